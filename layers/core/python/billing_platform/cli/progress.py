"""Progress of long runs on stderr (stdout stays the result, for pipes and `--json`)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """`tick()` per item; prints `<label>: <done>[/<total>] (<rate>/s)` at most every `every` seconds
    and once at the end. Silent with `enabled=False`."""

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        stream: TextIO | None = None,
        enabled: bool = True,
        every: float = 1.0,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._every = every
        self._start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()  # ticks may come from worker threads

    def tick(self, n: int = 1, note: str = "") -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last >= self._every:
                self._last = now
                self._print(note)

    def update(self, done: int, total: int) -> None:
        """Set absolute progress (for producers that count themselves)."""
        with self._lock:
            self.done, self.total = done, total
            now = time.monotonic()
            if now - self._last >= self._every:
                self._last = now
                self._print("")

    def finish(self, note: str = "") -> None:
        self._print(note or "done")

    def _print(self, note: str) -> None:
        if not self._enabled:
            return
        elapsed = max(time.monotonic() - self._start, 1e-6)
        total = f"/{self.total}" if self.total is not None else ""
        suffix = f" {note}" if note else ""
        self._stream.write(f"{self.label}: {self.done}{total} ({self.done / elapsed:.1f}/s){suffix}\n")
        self._stream.flush()
