"""Job functions for the worker tests, importable by dotted path as RQ requires."""

from __future__ import annotations

import time

from rq import get_current_job

ARRIVED = "test:arrived"


def meet(count: int, timeout: float) -> str:
    """Wait until `count` jobs have arrived: they can only all finish if they run at once."""
    job = get_current_job()
    assert job is not None
    redis = job.connection
    redis.incr(ARRIVED)
    deadline = time.monotonic() + timeout
    while int(redis.get(ARRIVED) or 0) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {int(redis.get(ARRIVED) or 0)} of {count} jobs ran at once")
        time.sleep(0.01)
    return job.id


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def busy(seconds: float) -> float:
    """Run Python for `seconds` (a timer's exception reaches a thread only between bytecodes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return seconds


def own_ttl() -> int:
    """The TTL of this job's own record as it runs (-1: none)."""
    job = get_current_job()
    assert job is not None
    return int(job.connection.ttl(job.key))
