"""The CircleCI API budget shared by every worker: a token bucket in Redis, taken per request.

CircleCI publishes no numbers for its rate limits and throttles bursts and sustained polling
(https://circleci.com/docs/guides/toolkit/api-developers-guide/#rate-limits), so all workers
together stay under a configured rate. A short wait is slept; a longer one raises
CircleCIRateLimited so the job is rescheduled instead of holding a worker.

A process takes a few tokens per Redis call and spends them locally: a round trip per API
request cost 0.5-1.2 ms on the enrichment's critical path.
"""

from __future__ import annotations

import threading

from redis import Redis

from config.clock import SYSTEM_CLOCK, Clock
from config.errors import CircleCIRateLimited
from workers.token_bucket import TOKEN_BUCKET_LUA

KEY = "cie:ratelimit:circleci-api"
_TAKE = (
    TOKEN_BUCKET_LUA
    + """
local granted, wait = take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {granted, tostring(wait)}
"""
)


class ApiBudget:
    def __init__(
        self,
        redis: Redis,
        *,
        per_second: float,
        burst: int,
        max_wait: float = 2.0,
        batch: int = 4,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._script = redis.register_script(_TAKE)
        self._args = [per_second, burst, max(1, min(batch, burst))]
        self.max_wait = max_wait
        self._clock = clock
        self._local = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        """Wait for one request's token, or raise CircleCIRateLimited carrying the wait."""
        waited = 0.0
        while True:
            with self._lock:
                if self._local:
                    self._local -= 1
                    return
                granted, wait = self._script(keys=[KEY], args=self._args)
                if int(granted):
                    self._local = int(granted) - 1
                    return
            wait = float(wait)
            if waited + wait > self.max_wait:
                raise CircleCIRateLimited(
                    f"the workers' shared CircleCI API budget is spent; next request in {wait:.1f} s",
                    retry_after=wait,
                    status=None,
                )
            self._clock.sleep(wait)
            waited += wait
