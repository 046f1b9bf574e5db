"""A clock whose time moves only when a test says so: `advance(s)`, or `sleep(s)` by the code under test.

It satisfies config.clock.Clock. `now()` starts at the real time (Redis, RQ and event payloads
live near it), `monotonic()` at an arbitrary point; both move together. `sleeps` lists every
sleep asked of it, so a test can assert on the waits themselves instead of on real seconds.
"""

from __future__ import annotations

import threading
import time


class FakeClock:
    def __init__(self, now: float | None = None) -> None:
        self._now = time.time() if now is None else now
        self._monotonic = 1_000.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float, /) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._monotonic += seconds

    def advance_to(self, epoch: float) -> None:
        """Move `now()` forward to `epoch` (never back)."""
        self.advance(max(0.0, epoch - self._now))
