"""Waiting for an event (a log line, a Redis key, a socket, a job's state) instead of sleeping.

    wait_until(check, "what it waits for", timeout=30)

polls `check()` until it returns something truthy and returns that; after `timeout` seconds the
test fails, saying what it waited for (and `details()`, when given: a process's output). The
deadlines are generous, for a slow and busy CI machine: a passing test waits only as long as the
event takes, and a fixed sleep would be either too long here or too short there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
TIMEOUT = 60.0
STEP = 0.02


def wait_until(
    check: Callable[[], T | None],
    what: str,
    timeout: float = TIMEOUT,
    step: float = STEP,
    *,
    details: Callable[[], str] | None = None,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            suffix = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s{suffix}")
        time.sleep(step)
