"""What a worker process builds once and reuses for every job: Redis, the API client, the pool.

Building an httpx client costs ~27 ms of CPU (it loads the certificate bundle), more than the
calls a job makes; SimpleWorker runs every job in this process, so they share these.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from redis import Redis

from config.settings import Settings
from workers.circleci.budget import ApiBudget
from workers.circleci.cache import ApiCache
from workers.circleci.client import CircleCIClient
from workers.circleci.transport import DEFAULT_TIMEOUT
from workers.enrichment import Enricher, count_api_call
from workers.transition import TransitionStore

# A job may sleep this long for CircleCI before it reschedules itself instead.
API_MAX_WAIT_SECONDS = 5.0
API_CALL_DEADLINE_SECONDS = 15.0


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        redis: Redis | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis or Redis.from_url(
            settings.redis_url or "redis://127.0.0.1:6379/0", socket_timeout=10, health_check_interval=30
        )
        self.budget = ApiBudget(self.redis, per_second=settings.api_rate_per_second, burst=settings.api_burst)
        self.client = None
        if settings.circle_token is not None:
            http = httpx.Client(
                base_url=settings.circleci_api_url,
                timeout=DEFAULT_TIMEOUT,
                transport=transport,
                event_hooks={"request": [self._before_api_request]},
            )
            self.client = CircleCIClient(
                token=settings.circle_token,
                artifact_hosts=settings.artifact_hosts,
                http_client=http,
                deadline=API_CALL_DEADLINE_SECONDS,
                max_wait=API_MAX_WAIT_SECONDS,
            )
        self.pool = ThreadPoolExecutor(settings.enrich_concurrency, thread_name_prefix="enrich")
        self.enricher = Enricher(
            self.client,
            cache=ApiCache(self.redis, ttl_seconds=settings.api_cache_ttl_seconds),
            transitions=TransitionStore(self.redis, ttl_seconds=settings.transition_ttl_seconds),
            pool=self.pool,
            max_failed_tests=settings.enrich_max_failed_tests,
            max_artifacts=settings.enrich_max_artifacts,
            successful_jobs=settings.enrich_successful_jobs,
        )

    def _before_api_request(self, request: httpx.Request) -> None:
        self.budget.take()
        count_api_call()

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        if self.client is not None:
            self.client.close()


_current: Runtime | None = None


def runtime() -> Runtime:
    """This process's Runtime, built from the environment on first use."""
    global _current
    if _current is None:
        _current = Runtime(Settings.from_environ())
    return _current


def use_runtime(value: Runtime | None) -> None:
    """Install a Runtime (tests, `circleci-events run`); None forgets it."""
    global _current
    _current = value
