"""API answers about one job or one pipeline, cached in Redis.

    cie:api:{facet}:{slug}:{job number}   a job's details, tests or artifacts (JSON)
    cie:api:pipeline:{pipeline id}        GET /pipeline/{id}, asked when a webhook names no
                                          branch or tag (a tag build's); a pipeline's VCS
                                          facts never change
    cie:api:step:{slug}:{job number}      a failed job's failing step and its masked log tail
                                          (workers/failed_step.py), only when it was had whole
    both expire after `ttl_seconds` (API_CACHE_TTL_SECONDS)
    cie:api:flaky-tests:{slug}            Insights' known-flaky tests of a project (the fields
                                          matched on), shared by every worker; expires after
                                          FLAKY_TESTS_TTL_SECONDS

A workflow-completed event usually arrives after the job-completed events of its jobs; the
cache makes sure a job's details, tests and artifacts (and a tag build's pipeline) are fetched
once whichever comes first. Only answers are cached, never errors. Reads and writes go in one
round trip each; an enrichment's writes go in its fan-out's round trip (workers/delivery/fan_out.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import orjson
from redis import Redis
from redis.client import Pipeline

PREFIX = "cie:api:"
Facet = tuple[int, str]  # (job number, "details" | "tests" | "artifacts" | "step")


class ApiCache:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    @staticmethod
    def key(slug: str, job_number: int, facet: str) -> str:
        return f"{PREFIX}{facet}:{quote(slug, safe='')}:{job_number}"

    @staticmethod
    def pipeline_key(pipeline_id: str) -> str:
        return f"{PREFIX}pipeline:{quote(pipeline_id, safe='')}"

    def pipeline(self, pipeline_id: str) -> dict[str, Any] | None:
        """The cached answer of GET /pipeline/{pipeline_id}, if any."""
        value = self._redis.get(self.pipeline_key(pipeline_id))
        return dict(orjson.loads(value)) if value is not None else None

    def put_pipeline(self, pipeline_id: str, answer: Mapping[str, Any]) -> None:
        self._redis.set(self.pipeline_key(pipeline_id), orjson.dumps(answer), ex=self._ttl)

    @staticmethod
    def flaky_key(slug: str) -> str:
        return f"{PREFIX}flaky-tests:{quote(slug, safe='')}"

    def flaky_tests(self, slug: str) -> list[dict[str, Any]] | None:
        """The cached known-flaky tests of a project, if any."""
        value = self._redis.get(self.flaky_key(slug))
        return list(orjson.loads(value)) if value is not None else None

    def put_flaky_tests(
        self, slug: str, rows: Sequence[Mapping[str, Any]], *, ttl_seconds: int, pipe: Pipeline | None = None
    ) -> None:
        """Cache a project's known-flaky tests; on `pipe` when given (its caller sends it)."""
        (pipe or self._redis).set(self.flaky_key(slug), orjson.dumps(list(rows)), ex=ttl_seconds)

    def get_many(self, slug: str, wanted: Sequence[Facet]) -> dict[Facet, Any]:
        """The cached answers among `wanted`."""
        if not wanted:
            return {}
        values = self._redis.mget([self.key(slug, n, facet) for n, facet in wanted])
        return {facet: orjson.loads(v) for facet, v in zip(wanted, values, strict=True) if v is not None}

    def put_many(self, slug: str, answers: Mapping[Facet, Any], pipe: Pipeline | None = None) -> None:
        """Cache `answers`: in one round trip, or queued on `pipe` when given (its caller sends it)."""
        if not answers:
            return
        if pipe is not None:
            for (n, facet), value in answers.items():
                pipe.set(self.key(slug, n, facet), orjson.dumps(value), ex=self._ttl)
            return
        with self._redis.pipeline(transaction=False) as own:
            self.put_many(slug, answers, pipe=own)
            own.execute()
