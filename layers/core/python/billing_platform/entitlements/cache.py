"""A small thread-safe TTL cache for plan and feature look-ups. Never the source of remaining quota:
that answer always comes from the counter's own conditional update (a cached counter state is only an
expectation that an idempotent consume's condition checks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Entries expire `ttl_seconds` after they were stored; at most `max_entries` are kept
    (the oldest stored entry is evicted first)."""

    def __init__(
        self, ttl_seconds: float, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._data: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._data[key]
                return None
            return entry[1]

    def put(self, key: K, value: V) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._data.pop(key, None)
            if len(self._data) >= self._max:
                del self._data[next(iter(self._data))]
            self._data[key] = (self._clock() + self._ttl, value)

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
