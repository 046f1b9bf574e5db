"""The CircleCI API budget shared by every worker: a token bucket in Redis, taken per request.

CircleCI publishes no numbers for its rate limits and throttles bursts and sustained polling
(https://circleci.com/docs/guides/toolkit/api-developers-guide/#rate-limits), so all workers
together stay under a configured rate. A short wait is slept; a longer one raises
CircleCIRateLimited so the job is rescheduled instead of holding a worker.

A process takes a few tokens per Redis call and spends them locally: a round trip per API
request cost 0.5-1.2 ms on the enrichment's critical path, and each take is four commands
(the script, TIME, GET, SET). How many at a time follows the budget: a quarter of the
burst and half a second's rate, at most MAX_BATCH (the default 10/s, burst 20: 5; the benchmarks'
unbounded budget: 10, about one take per event). Tokens a process took and did not spend within
HOLD_SECONDS are dropped, spent for nothing rather than spent late: no process sits on the budget.
"""

from __future__ import annotations

import threading

from redis import Redis

from config.clock import SYSTEM_CLOCK, Clock
from config.errors import CircleCIRateLimited
from workers.token_bucket import RATE_LIMIT_PREFIX, TOKEN_BUCKET_LUA

KEY = RATE_LIMIT_PREFIX + "circleci-api"
MAX_BATCH = 10
HOLD_SECONDS = 1.0
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
        batch: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`batch`: tokens per Redis call (by default from the budget, see above)."""
        self._script = redis.register_script(_TAKE)
        if batch is None:
            batch = min(MAX_BATCH, burst // 4, int(per_second // 2))
        self.batch = max(1, min(batch, burst))
        self._args = [per_second, burst, self.batch]
        self.max_wait = max_wait
        self._clock = clock
        self._local = 0
        self._taken_at = 0.0  # monotonic: when the local tokens were taken
        self._lock = threading.Lock()

    def take(self) -> None:
        """Wait for one request's token, or raise CircleCIRateLimited carrying the wait."""
        waited = 0.0
        while True:
            with self._lock:
                if self._local and self._clock.monotonic() - self._taken_at < HOLD_SECONDS:
                    self._local -= 1
                    return
                granted, wait = self._script(keys=[KEY], args=self._args)
                if int(granted):
                    self._local = int(granted) - 1
                    self._taken_at = self._clock.monotonic()
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
