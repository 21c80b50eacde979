"""One pattern for what a Lambda container builds once and keeps: `PerContainer`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_UNSET = object()


class PerContainer(Generic[T]):
    """One `T` per container, built on first use (a cold path never pays for what it does not use) and
    built again when `depends_on()` answers something else (the local stack installs its billing
    provider after the handlers are imported). `use()` pins an instance (tests); `reset()` forgets it."""

    def __init__(self, build: Callable[[], T], *, depends_on: Callable[[], object] | None = None) -> None:
        self._build = build
        self._depends_on = depends_on
        self._lock = threading.Lock()
        self._value: T | None = None
        self._basis: object = _UNSET
        self._pinned = False

    def __call__(self) -> T:
        basis = self._depends_on() if self._depends_on is not None else None
        with self._lock:
            if self._value is None or (not self._pinned and basis is not self._basis):
                self._value = self._build()
                self._basis = basis
            return self._value

    def use(self, value: T) -> None:
        """Serve `value` from now on, whatever `depends_on` says."""
        with self._lock:
            self._value, self._pinned = value, True

    def reset(self) -> None:
        with self._lock:
            self._value, self._basis, self._pinned = None, _UNSET, False
