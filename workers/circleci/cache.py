"""API answers about one job, cached in Redis per (project slug, job number, facet).

A workflow-completed event usually arrives after the job-completed events of its jobs; the
cache makes sure a job's details, tests and artifacts are fetched once whichever comes first.
Only answers are cached, never errors. Reads and writes go in one round trip each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import orjson
from redis import Redis

PREFIX = "cie:api:"
Facet = tuple[int, str]  # (job number, "details" | "tests" | "artifacts")


class ApiCache:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    @staticmethod
    def key(slug: str, job_number: int, facet: str) -> str:
        return f"{PREFIX}{facet}:{quote(slug, safe='')}:{job_number}"

    def get_many(self, slug: str, wanted: Sequence[Facet]) -> dict[Facet, Any]:
        """The cached answers among `wanted`."""
        if not wanted:
            return {}
        values = self._redis.mget([self.key(slug, n, facet) for n, facet in wanted])
        return {facet: orjson.loads(v) for facet, v in zip(wanted, values, strict=True) if v is not None}

    def put_many(self, slug: str, answers: Mapping[Facet, Any]) -> None:
        if not answers:
            return
        with self._redis.pipeline(transaction=False) as pipe:
            for (n, facet), value in answers.items():
                pipe.set(self.key(slug, n, facet), orjson.dumps(value), ex=self._ttl)
            pipe.execute()
