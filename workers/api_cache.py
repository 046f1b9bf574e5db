"""API answers about one job, cached in Redis per (project slug, job number, facet).

A workflow-completed event usually arrives after the job-completed events of its jobs; the
cache makes sure a job's details, tests and artifacts are fetched once whichever comes first.
Only answers are cached, never errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import orjson
from redis import Redis

PREFIX = "cie:api:"
T = TypeVar("T")


class ApiCache:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    @staticmethod
    def key(slug: str, job_number: int, facet: str) -> str:
        return f"{PREFIX}{facet}:{quote(slug, safe='')}:{job_number}"

    def fetch(self, slug: str, job_number: int, facet: str, load: Callable[[], Any]) -> Any:
        """The cached JSON value, or `load()`'s, stored for next time."""
        key = self.key(slug, job_number, facet)
        cached = self._redis.get(key)
        if cached is not None:
            return orjson.loads(cached)
        value = load()
        self._redis.set(key, orjson.dumps(value), ex=self._ttl)
        return value
