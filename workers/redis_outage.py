"""Riding out a Redis outage where giving up would post twice: the record of a post already sent.

A post the chat service accepted cannot be taken back, and what keeps it from being sent again
is its record in Redis (the delivery's `delivered` mark, a Slack thread's ts). When Redis is
away at that moment (restarting, failing over), the job would fail, run again once Redis is
back and, finding no record, post again. `ride_out` instead retries the write, backing off from
RETRY_FIRST_SECONDS to RETRY_MAX_SECONDS, until Redis answers:

    redis_outage_waiting     (warning) the first failure: what waits, and why
    redis_outage_ridden_out  (info) written after all, and after how long
    redis_outage_gave_up     (error) still failing after `limit` seconds: the error is raised,
                             the job fails and, run again, may post once more

The job's own timeout (EVENT_JOB_TIMEOUT_SECONDS) still stops it; meanwhile the process keeps
renewing the job's lease, so no other worker runs it while this one waits. Only connection
failures and timeouts are retried: a write Redis refuses (OOM, a wrong type) fails at once.

`write` must be safe to make again: it may have been applied when the answer was lost. Each
call builds its own pipeline (redis-py empties one whose execute raised).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger("workers.redis_outage")
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 1.0
# How long a write waits for Redis at most: the default job timeout; a shorter one ends it sooner.
LIMIT_SECONDS = 300.0
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)

T = TypeVar("T")


def ride_out(write: Callable[[], T], *, what: str, clock: Clock = SYSTEM_CLOCK, limit: float = LIMIT_SECONDS) -> T:
    """`write()`'s answer, once Redis gives one; its last error after `limit` seconds without."""
    try:
        return write()
    except UNAVAILABLE as exc:
        first = exc
    started = clock.monotonic()
    log.warning("redis_outage_waiting", what=what, error=_short(first), retry="until Redis answers")
    wait = RETRY_FIRST_SECONDS
    while True:
        clock.sleep(wait)
        try:
            answer = write()
        except UNAVAILABLE as exc:
            waited = clock.monotonic() - started
            if waited >= limit:
                log.error("redis_outage_gave_up", what=what, error=_short(exc), waited_seconds=round(waited, 1))
                raise
            wait = min(wait * 2, RETRY_MAX_SECONDS)
            continue
        log.info("redis_outage_ridden_out", what=what, waited_seconds=round(clock.monotonic() - started, 1))
        return answer


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
