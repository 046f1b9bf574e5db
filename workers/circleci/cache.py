"""API answers about one job or one pipeline, cached in Redis.

    cie:api:job:{slug}:{job number}       what is known of one job, as JSON by facet: `details`,
                                          `tests`, `artifacts` (the API's answers) and `step` (its
                                          failing step and masked log tail, workers/failed_step.py,
                                          only when it was had whole)
    cie:api:pipeline:{pipeline id}        GET /pipeline/{id}, asked when a webhook names no
                                          branch or tag (a tag build's); a pipeline's VCS
                                          facts never change
    both expire after `ttl_seconds` (API_CACHE_TTL_SECONDS)
    cie:api:flaky-tests:{slug}            Insights' known-flaky tests of a project (the fields
                                          matched on), shared by every worker; expires after
                                          FLAKY_TESTS_TTL_SECONDS

A workflow-completed event usually arrives after the job-completed events of its jobs; the
cache makes sure a job's details, tests and artifacts (and a tag build's pipeline) are fetched
once whichever comes first. Only answers are cached, never errors. Reads and writes go in one
round trip each; an enrichment's writes go in its fan-out's round trip (workers/delivery/fan_out.py).

One entry per job, not one per facet: a failed job's tests, artifacts and step were three SETs
with every event. A write holds what the enrichment read of the job and what it fetched; two
workers writing one job at once may each drop the other's newer facet, which is then fetched
again: a cache, never the record.
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
# The project's known-flaky tests, read by `get_many(..., flaky=True)` in the same MGET as the jobs'
# facets (one command less per event with a failed job); no job has number -1.
FLAKY: Facet = (-1, "flaky-tests")


class ApiCache:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    @staticmethod
    def key(slug: str, job_number: int) -> str:
        return f"{PREFIX}job:{quote(slug, safe='')}:{job_number}"

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

    def get_many(self, slug: str, wanted: Sequence[Facet], *, flaky: bool = False) -> dict[Facet, Any]:
        """The cached answers among `wanted`; with `flaky`, the project's known-flaky tests too, under
        FLAKY (None when not cached)."""
        if not wanted and not flaky:
            return {}
        numbers = list(dict.fromkeys(n for n, _ in wanted))
        values = self._redis.mget([self.key(slug, n) for n in numbers] + ([self.flaky_key(slug)] if flaky else []))
        jobs = {n: orjson.loads(v) for n, v in zip(numbers, values, strict=False) if v is not None}
        found = {(n, facet): jobs[n][facet] for n, facet in wanted if facet in jobs.get(n, {})}
        if flaky:
            found[FLAKY] = list(orjson.loads(values[-1])) if values[-1] is not None else None
        return found

    def put_many(
        self,
        slug: str,
        answers: Mapping[Facet, Any],
        pipe: Pipeline | None = None,
        *,
        known: Mapping[Facet, Any] | None = None,
    ) -> None:
        """Cache `answers`, one SET per job holding them with what is `known` of the job (what was
        read from the cache): in one round trip, or queued on `pipe` when given (its caller sends it)."""
        if not answers:
            return
        if pipe is not None:
            jobs: dict[int, dict[str, Any]] = {}
            for (n, facet), value in answers.items():
                jobs.setdefault(n, {})[facet] = value
            for (n, facet), value in (known or {}).items():
                if n in jobs:
                    jobs[n].setdefault(facet, value)
            for n, facets in jobs.items():
                pipe.set(self.key(slug, n), orjson.dumps(facets), ex=self._ttl)
            return
        with self._redis.pipeline(transaction=False) as own:
            self.put_many(slug, answers, pipe=own, known=known)
            own.execute()
