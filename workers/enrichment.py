"""Enrichment: turn the thin webhook into the enriched event (schema_version 1).

    workflow-completed  the workflow's jobs (every page); for failed jobs, their tests and
                        artifacts, concurrently; the fixed/broken transition
    job-completed       the job's details, and its tests and artifacts when it failed

A webhook that names neither branch nor tag (a GitHub OAuth tag build sends `branch: null`, no
`tag` and null commit fields) costs one more call, `GET /pipeline/{id}`: its `vcs` fills what the
webhook left blank (the tag, the commit) and its trigger actor is kept, so `tags:` subscriptions
and transitions see the tag; `enrichment.sources.vcs` says `pipeline` then, else `webhook`.

Answers about a job are cached per (project, job number), and a pipeline's per id, so a
workflow-completed event after its job-completed events asks nothing twice. When CircleCI
cannot answer, the event goes on with what the webhook itself said, marked
`enrichment.complete: false` with the reason; a retryable failure (429, 5xx, timeouts) is
raised instead while the caller may still defer.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any, cast

import structlog
from redis.client import Pipeline

from config.errors import (
    CircleCIAPIError,
    CircleCIEventsError,
    CircleCIForbidden,
    CircleCIRateLimited,
    CircleCIServerError,
    CircleCITimeout,
    CircleCIUnauthorized,
    CircleCIUnreachable,
    EventUndecodable,
)
from workers import known_flaky
from workers.circleci.cache import FLAKY, ApiCache
from workers.circleci.client import CircleCIClient
from workers.enriched_event import (
    SCHEMA_VERSION,
    Artifact,
    EnrichedEvent,
    FailedJob,
    FailedStep,
    Job,
    Tests,
    Transition,
    Vcs,
    Workflow,
    WorkflowJob,
)
from workers.failed_step import StepReader
from workers.jobs import WORKFLOW_COMPLETED
from workers.known_flaky import FlakyIndex
from workers.timestamps import duration_seconds
from workers.transition import TransitionStore, ref_name
from workers.vcs import VcsFacts, vcs_facts

RETRYABLE = (CircleCIRateLimited, CircleCIServerError, CircleCITimeout, CircleCIUnreachable)
# CircleCI refused the token (revoked, mistyped, a project token): what an operator must fix first.
REFUSED = (CircleCIUnauthorized, CircleCIForbidden)
# Job statuses that mean "this job broke"; the API knows more than webhooks document (pitfalls A9).
FAILED = frozenset({"failed", "error", "infrastructure_fail", "timedout", "terminated-unknown", "unauthorized"})
log = structlog.get_logger(__name__)
MESSAGE_LINES = 5
MESSAGE_CHARS = 500

# The API requests of the current enrichment, one item each; the http client's request hook adds
# them from the pool's threads (list.append is atomic, `n += 1` is not).
api_calls: contextvars.ContextVar[list[None] | None] = contextvars.ContextVar("api_calls", default=None)


def count_api_call() -> None:
    calls = api_calls.get()
    if calls is not None:
        calls.append(None)


# Where an enrichment's cache writes wait for the job's next round trip (its fan-out's pipeline),
# when the job collects them; else each is sent at once.
Write = Callable[[Pipeline | None], None]
pending_writes: contextvars.ContextVar[list[Write] | None] = contextvars.ContextVar("pending_writes", default=None)


def write_later(write: Write) -> None:
    """`write(pipe)` queued for the job's next round trip, or `write(None)` now when none is collecting."""
    pending = pending_writes.get()
    if pending is None:
        write(None)
    else:
        pending.append(write)


class Enricher:
    def __init__(
        self,
        client: CircleCIClient | None,
        *,
        cache: ApiCache,
        transitions: TransitionStore,
        pool: ThreadPoolExecutor,
        max_failed_tests: int = 10,
        max_artifacts: int = 20,
        successful_jobs: bool = False,
        steps: StepReader | None = None,
        log_tail_seconds: float = 5.0,
        flaky_ttl_seconds: int = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`steps` reads failed jobs' failing steps and log tails (None: LOG_TAIL off, or no
        token); a tail not had within `log_tail_seconds` of asking is left out, saying why."""
        self.client = client
        self.cache = cache
        self.transitions = transitions
        self.pool = pool
        self.max_failed_tests = max_failed_tests
        self.max_artifacts = max_artifacts
        self.successful_jobs = successful_jobs
        self.steps = steps
        self.log_tail_seconds = log_tail_seconds
        self.flaky_ttl_seconds = flaky_ttl_seconds
        self._clock = clock

    def enrich(self, envelope: dict[str, Any], *, may_defer: bool) -> EnrichedEvent:
        """The enriched event. Raises a retryable CircleCIAPIError only when `may_defer`."""
        try:
            payload: dict[str, Any] = envelope["payload"]
            facts = vcs_facts(payload)
            event = from_webhook(envelope, facts)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # the receiver checked these fields; a job that still lacks them will never enrich
            raise EventUndecodable(f"the queued webhook payload cannot be read ({type(exc).__name__}: {exc})") from exc
        calls: list[None] = []
        token = api_calls.set(calls)
        problems: list[CircleCIAPIError] = []
        notes: list[str] = []  # optional parts missing (a log tail): said, never "incomplete"
        recorded = False  # the transition, recorded while the job's facets were asked
        try:
            if self.client is None:
                event["enrichment"]["reason"] = "CIRCLE_TOKEN is not set: only the webhook's own facts are shown"
            else:
                if facts.ref is None:
                    facts = self._ref_from_pipeline(event, facts, problems)
                if event["event_type"] == WORKFLOW_COMPLETED:
                    recorded = self._workflow(event, facts, notes, problems)
                else:
                    self._job(event, notes, problems)
        except CircleCIAPIError as exc:
            problems.insert(0, exc)
        finally:
            api_calls.reset(token)
        retryable = [p for p in problems if isinstance(p, RETRYABLE)]
        if retryable and may_defer:
            raise retryable[0]
        if problems:
            problems.sort(key=lambda p: not isinstance(p, REFUSED))  # stable: else the first problem
            event["enrichment"]["reason"] = f"{problems[0].code}: {problems[0].message}"
        elif notes and event["enrichment"]["reason"] is None:
            event["enrichment"]["reason"] = notes[0]
        if notes:
            event["enrichment"]["notes"] = notes
        event["enrichment"]["error_code"] = problems[0].code if problems else None
        event["enrichment"]["complete"] = not problems and self.client is not None
        event["enrichment"]["api_calls"] = len(calls)
        if event["event_type"] == WORKFLOW_COMPLETED:
            if not recorded:
                event["transition"] = self._transition(event, facts)
            transition = event["transition"]
            if self.client is not None and transition is not None and transition["kind"] == "broken":
                event["pipeline"]["trigger_actor"] = self._trigger_actor(event)
        return event

    def trigger_actor(self, event: EnrichedEvent) -> str | None:
        """Who triggered the event's pipeline (see _trigger_actor); the approval notice names them."""
        return self._trigger_actor(event) if self.client is not None else None

    def _trigger_actor(self, event: EnrichedEvent) -> str | None:
        """Who triggered the pipeline that broke the ref (mentioned there): one call, cached per
        pipeline, on a break only; None when CircleCI does not say or cannot answer now, which is
        not worth a delay."""
        if event["pipeline"].get("trigger_actor"):  # the pipeline was asked already (a ref-less webhook)
            return str(event["pipeline"]["trigger_actor"])
        calls: list[None] = []
        token = api_calls.set(calls)
        try:
            pipeline_id = event["pipeline"]["id"]
            return _actor(self._pipeline(pipeline_id)) if pipeline_id else None
        except CircleCIAPIError:
            return None
        finally:
            api_calls.reset(token)
            event["enrichment"]["api_calls"] += len(calls)

    # -- the pipeline, when the webhook names no ref ----------------------------------------

    def _pipeline(self, pipeline_id: str) -> dict[str, Any]:
        """`GET /pipeline/{id}`, cached per pipeline; raises CircleCIAPIError."""
        assert self.client is not None
        answer = self.cache.pipeline(pipeline_id)
        if answer is None:
            answer = self.client.pipeline(pipeline_id).to_dict()
            self.cache.put_pipeline(pipeline_id, answer)
        return answer

    def _ref_from_pipeline(self, event: EnrichedEvent, facts: VcsFacts, problems: list[CircleCIAPIError]) -> VcsFacts:
        """The webhook's VCS facts completed by `GET /pipeline/{id}` (cached); on failure the
        webhook's own, with the failure in `problems`."""
        try:
            answer = self._pipeline(str(event["pipeline"]["id"]))
        except CircleCIAPIError as exc:
            problems.append(exc)
            return facts
        # the API's pipeline has the webhook's `vcs` and `trigger_parameters` maps
        completed = facts.filled_from(vcs_facts({"pipeline": answer}))
        event["vcs"] = cast(Vcs, completed.to_dict())
        event["pipeline"]["trigger_actor"] = _actor(answer)
        event["enrichment"]["sources"]["vcs"] = "pipeline"
        return completed

    # -- the two event types ---------------------------------------------------------------

    def _workflow(
        self, event: EnrichedEvent, facts: VcsFacts, notes: list[str], problems: list[CircleCIAPIError]
    ) -> bool:
        """The workflow's jobs and its failed jobs' facets; its transition recorded while those are
        asked (recording the same event again answers the same kind: a deferral may follow). True
        once the transition is recorded."""
        assert self.client is not None
        workflow = event["workflow"]
        assert workflow is not None
        jobs = self.client.workflow_jobs(str(workflow["id"]))
        event["jobs"] = [
            {
                "id": j.id,
                "name": j.name,
                "number": j.job_number,
                "type": j.type,
                "status": j.status,
                "started_at": j.started_at,
                "stopped_at": j.stopped_at,
                "duration_seconds": duration_seconds(j.started_at, j.stopped_at),
                "web_url": _job_url(workflow.get("url"), j.job_number),
            }
            for j in jobs
        ]
        wanted = [
            j
            for j in event["jobs"]
            if j["number"] is not None
            and j["type"] != "approval"
            and (j["status"] in FAILED or (self.successful_jobs and j["status"] == "success"))
        ]
        slug = str(event["project"]["slug"])
        numbers = [int(j["number"]) for j in wanted if j["number"] is not None]
        failing = [j["number"] for j in wanted if j["status"] in FAILED]
        keys = [(n, f) for n in numbers for f in ("tests", "artifacts")]
        any_failed = any(j["status"] in FAILED for j in wanted)
        cached = self._cached(slug, keys, failing, flaky=any_failed)
        steps = self._start_steps(slug, failing, cached)
        flaky = self._start_flaky(slug, any_failed, cached)
        asked = self._start_facets(slug, keys, cached)
        event["transition"] = self._transition(event, facts)  # a round trip while the API answers
        fresh: dict[tuple[Any, str], Any] = {}  # the API's answers, cached in one write per job
        facets = self._finish_facets(slug, asked, problems, fresh)
        event["failed_jobs"] = [
            _failed_job(
                j,
                self._digest_tests(facets.get((j["number"] or 0, "tests"))),
                self._artifact_links(facets.get((j["number"] or 0, "artifacts"))),
            )
            for j in wanted
            if j["status"] in FAILED
        ]
        self._finish_steps(slug, event["failed_jobs"], steps, notes, fresh)
        self._keep(slug, fresh, cached)
        tests_of = {n: facets.get((n, "tests")) for n in numbers}
        self._mark_flaky(event, tests_of, self._finish_flaky(slug, flaky, notes))
        return True

    def _job(self, event: EnrichedEvent, notes: list[str], problems: list[CircleCIAPIError]) -> None:
        job = event["job"]
        assert job is not None
        slug, number = str(event["project"]["slug"]), job["number"]
        failed = job["status"] in FAILED
        wanted = ["details", "tests", "artifacts"] if failed or self.successful_jobs else ["details"]
        cached = self._cached(slug, [(number, f) for f in wanted], [number] if failed else [], flaky=failed)
        steps = self._start_steps(slug, [number] if failed else [], cached)
        flaky = self._start_flaky(slug, failed, cached)
        fresh: dict[tuple[Any, str], Any] = {}
        facets = self._finish_facets(
            slug, self._start_facets(slug, [(number, f) for f in wanted], cached), problems, fresh
        )
        details = facets.get((number, "details"))
        if details:
            job["web_url"] = job["web_url"] or details.get("web_url")
            job["duration_seconds"] = _ms(details.get("duration")) or job["duration_seconds"]
            job["executor"] = details.get("executor")
            job["parallelism"] = details.get("parallelism")
        event["jobs"] = [_workflow_job(job)]
        if failed:
            tests = self._digest_tests(facets.get((number, "tests")))
            artifacts = self._artifact_links(facets.get((number, "artifacts")))
            event["failed_jobs"] = [_failed_job(job, tests, artifacts)]
            self._finish_steps(slug, event["failed_jobs"], steps, notes, fresh)
            self._mark_flaky(event, {number: facets.get((number, "tests"))}, self._finish_flaky(slug, flaky, notes))
        self._keep(slug, fresh, cached)

    # -- the failing step and its log tail: asked first, awaited last, within a time bound ---------

    def _keep(self, slug: str, fresh: dict[tuple[Any, str], Any], cached: dict[tuple[Any, str], Any]) -> None:
        """Cache the API's answers in the job's next round trip: one entry per job, with what was
        cached of it before (workers/circleci/cache.py)."""
        if fresh:
            write_later(partial(self.cache.put_many, slug, fresh, known=cached))

    def _cached(
        self, slug: str, facets: list[tuple[Any, str]], failing: list[int | None], *, flaky: bool
    ) -> dict[tuple[Any, str], Any]:
        """The cached facets and failing steps among those wanted, and with `flaky` the project's
        known-flaky tests (under FLAKY), in one command."""
        steps = [(n, "step") for n in failing if n is not None] if self.steps is not None else []
        return self.cache.get_many(slug, facets + steps, flaky=flaky and self.client is not None)

    def _start_steps(
        self, slug: str, numbers: list[int | None], found: dict[tuple[Any, str], Any]
    ) -> tuple[dict[int, Any], float]:
        """Each failed job's failing step, `found` in the cache or asked on the pool now, so the
        v1.1 call and the output fetch run alongside tests and artifacts; and the moment to stop
        waiting."""
        deadline = self._clock() + self.log_tail_seconds
        reader = self.steps
        wanted = [n for n in numbers if n is not None]
        if reader is None or not wanted:
            return {}, deadline
        started: dict[int, Any] = {}
        for n in wanted:
            cached = found.get((n, "step"))
            started[n] = (
                cached
                if cached is not None
                else self.pool.submit(contextvars.copy_context().run, reader.failed_step, slug, n)
            )
        return started, deadline

    def _finish_steps(
        self,
        slug: str,
        jobs: list[FailedJob],
        started: tuple[dict[int, Any], float],
        notes: list[str],
        fresh: dict[tuple[Any, str], Any],
    ) -> None:
        """`failed_step` of each job (null with a note when it cannot be had in time or at all);
        the ones had whole added to `fresh`, to be cached."""
        steps, deadline = started
        for job in jobs:
            number = job["number"]
            if number not in steps:
                continue
            item, name = steps[number], job["name"] or f"job {number}"
            job["failed_step"] = None
            if isinstance(item, Future):
                try:
                    step: FailedStep = item.result(timeout=max(0.0, deadline - self._clock()))
                except FutureTimeout:
                    notes.append(f"{name}: the failing step was not had within {self.log_tail_seconds:g} s")
                    continue
                except CircleCIEventsError as exc:
                    notes.append(f"{name}: failing step: {exc.message}")
                    continue
                except Exception as exc:  # a bug here must not cost the notification
                    log.exception("failed_step_error", job=name)
                    notes.append(f"{name}: failing step: {type(exc).__name__}")
                    continue
                if step["reason"] is None:
                    fresh[(number, "step")] = step
            else:
                step = item
            job["failed_step"] = step
            if step["reason"] is not None:
                notes.append(f"{name}: log tail of {step['name']!r}: {step['reason']}")

    # -- known-flaky tests: Insights, once per project per FLAKY_TESTS_TTL_SECONDS ---------------

    def _start_flaky(self, slug: str, wanted: bool, found: dict[tuple[Any, str], Any]) -> Any:
        """The project's known-flaky tests: cached rows, a future asking Insights, UNSUPPORTED for a
        circleci/ slug, or None when there is no failed job to mark."""
        client = self.client
        if not wanted or client is None:
            return None
        if not known_flaky.supported(slug):
            return known_flaky.UNSUPPORTED
        cached = found[FLAKY] if FLAKY in found else self.cache.flaky_tests(slug)
        if cached is not None:
            return cached
        fetch = partial(client.flaky_tests, slug)
        return self.pool.submit(contextvars.copy_context().run, fetch)

    def _finish_flaky(self, slug: str, started: Any, notes: list[str]) -> FlakyIndex | None:
        """The index to mark failed tests with; None (with a note) when Insights cannot say."""
        if started is None:
            return None
        if started == known_flaky.UNSUPPORTED:
            notes.append(known_flaky.UNSUPPORTED)
            return None
        if isinstance(started, Future):
            try:
                rows = known_flaky.compact(t.to_dict() for t in started.result())
            except CircleCIAPIError as exc:  # never a deferral: the marks are not worth a delay
                notes.append(f"known-flaky tests: {exc.code}: {exc.message}")
                return None
            write_later(partial(_put_flaky, self.cache, slug, rows, self.flaky_ttl_seconds))
            started = rows
        return FlakyIndex(started)

    def _mark_flaky(
        self, event: EnrichedEvent, tests_of: dict[Any, list[dict[str, Any]] | None], flaky: FlakyIndex | None
    ) -> None:
        """`known_flaky` on each listed failed test Insights knows, and `only_known_flaky` on the
        event: every failing job failed tests, and only tests known to flake (all of them, not
        only the ones listed). Without an answer from Insights, neither is set."""
        if flaky is None:
            return
        every = bool(event["failed_jobs"])
        for job in event["failed_jobs"]:
            failures = [t for t in tests_of.get(job["number"]) or [] if _failed_test(t)]
            every = every and bool(failures) and all(flaky.times(job["name"], t) is not None for t in failures)
            for test in job["tests"]["failures"] if job["tests"] else []:
                times = flaky.times(job["name"], dict(test))
                if times is not None:
                    test["known_flaky"] = {"times_flaked": times}
        event["only_known_flaky"] = every

    # -- facets of jobs: cached, the missing ones fetched concurrently -----------------------------

    def _start_facets(
        self, slug: str, wanted: list[tuple[Any, str]], cached: dict[tuple[Any, str], Any]
    ) -> tuple[dict[tuple[Any, str], Any], list[tuple[Any, str]], list[Future[Any]]]:
        """The (job number, facet) answers `cached`, and the misses asked of the API on the pool now."""
        client = self.client
        assert client is not None
        found = {key: cached[key] for key in wanted if key in cached}
        missing = [key for key in wanted if key not in found]
        fetch = {
            "details": lambda n: client.job_details(slug, n).to_dict(),
            "tests": lambda n: [t.to_dict() for t in client.job_tests(slug, n)],
            "artifacts": lambda n: [a.to_dict() for a in client.job_artifacts(slug, n)],
        }
        calls = [partial(fetch[facet], number) for number, facet in missing]
        return found, missing, [self.pool.submit(contextvars.copy_context().run, call) for call in calls]

    def _finish_facets(
        self,
        slug: str,
        asked: tuple[dict[tuple[Any, str], Any], list[tuple[Any, str]], list[Future[Any]]],
        problems: list[CircleCIAPIError],
        fresh: dict[tuple[Any, str], Any],
    ) -> dict[tuple[Any, str], Any]:
        """Every answer of `_start_facets`: the cached ones and the API's (a failed call gives none); the
        API's added to `fresh`, to be cached."""
        found, missing, futures = asked
        results = self._gather(futures, problems)
        answered = {key: value for key, value in zip(missing, results, strict=True) if value is not None}
        fresh.update(answered)
        return found | answered

    def _digest_tests(self, items: list[dict[str, Any]] | None) -> Tests | None:
        if items is None:
            return None
        failures = [t for t in items if _failed_test(t)]
        shown = failures[: self.max_failed_tests]
        return {
            "total": len(items),
            "failed": len(failures),
            "more": len(failures) - len(shown),
            "failures": [
                {
                    "name": t.get("name"),
                    "classname": t.get("classname"),
                    "file": t.get("file"),
                    "message": _first_lines(t.get("message")),
                }
                for t in shown
            ],
        }

    def _artifact_links(self, items: list[dict[str, Any]] | None) -> list[Artifact] | None:
        if items is None:
            return None
        links: list[Artifact] = [
            {"path": a.get("path"), "url": a.get("url"), "node_index": a.get("node_index")} for a in items
        ]
        return links[: self.max_artifacts]

    def _gather(self, futures: list[Future[Any]], problems: list[CircleCIAPIError]) -> list[Any]:
        """The results of calls running on the pool; a failed one gives None."""
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except CircleCIAPIError as exc:
                problems.append(exc)
                results.append(None)
        return results

    def _transition(self, event: EnrichedEvent, facts: VcsFacts) -> Transition | None:
        subject = transition_subject(event, facts)
        return None if subject is None else cast(Transition, self.transitions.record(**subject).to_dict())


def _put_flaky(cache: ApiCache, slug: str, rows: list[dict[str, Any]], ttl: int, pipe: Pipeline | None) -> None:
    cache.put_flaky_tests(slug, rows, ttl_seconds=ttl, pipe=pipe)


def transition_subject(event: EnrichedEvent, facts: VcsFacts) -> dict[str, Any] | None:
    """What a workflow event's transition is recorded under (TransitionStore.record's arguments):
    project, ref (`tag:` before a tag), workflow, status, pipeline number, happened_at. None
    when it has no transition: neither branch nor tag known, or no workflow status."""
    workflow = event["workflow"]
    if facts.ref is None or workflow is None or not workflow.get("status"):
        return None
    return {
        "project": event["project"]["slug"],
        "ref": ref_name(facts.branch, facts.tag) or facts.ref,
        "workflow": workflow["name"],
        "status": workflow["status"],
        "pipeline_number": event["pipeline"]["number"],
        "happened_at": event["happened_at"],
        "web_url": workflow.get("url"),
    }


def from_webhook(envelope: dict[str, Any], facts: VcsFacts) -> EnrichedEvent:
    """Everything the webhook itself says, in the enriched event's shape."""
    p = envelope["payload"]
    project, org, pipeline = p["project"], p["organization"], p["pipeline"]
    wf, job = p.get("workflow"), p.get("job")
    workflow: Workflow | None = None
    if isinstance(wf, dict):
        workflow = {
            "id": wf.get("id"),
            "name": wf.get("name"),
            "status": wf.get("status"),
            "url": wf.get("url"),
            "created_at": wf.get("created_at"),
            "stopped_at": wf.get("stopped_at"),
            "duration_seconds": duration_seconds(wf.get("created_at"), wf.get("stopped_at")),
        }
    job_entry: Job | None = None
    if isinstance(job, dict):
        job_entry = {
            "id": job.get("id"),
            "number": job.get("number"),
            "name": job.get("name"),
            "status": job.get("status"),
            "started_at": job.get("started_at"),
            "stopped_at": job.get("stopped_at"),
            "duration_seconds": duration_seconds(job.get("started_at"), job.get("stopped_at")),
            "web_url": _job_url(workflow["url"] if workflow else None, job.get("number")),
        }
    status = job_entry["status"] if job_entry else workflow["status"] if workflow else None
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": envelope["event_id"],
        "event_type": envelope["event_type"],
        "happened_at": p.get("happened_at"),
        "received_at": envelope.get("received_at"),
        "request_id": envelope.get("request_id"),
        "status": status,
        "project": {"id": project.get("id"), "slug": project.get("slug"), "name": project.get("name")},
        "organization": {"id": org.get("id"), "name": org.get("name")},
        "pipeline": {
            "id": pipeline.get("id"),
            "number": pipeline.get("number"),
            "created_at": pipeline.get("created_at"),
            "trigger_type": (pipeline.get("trigger") or {}).get("type"),
            "trigger_actor": None,  # who triggered it: only GET /pipeline/{id} says
        },
        "vcs": cast(Vcs, facts.to_dict()),
        "workflow": workflow,
        "job": job_entry,
        "jobs": [],
        "failed_jobs": [],
        "transition": None,
        "enrichment": {
            "complete": False,
            "reason": None,
            "error_code": None,
            "api_calls": 0,
            "sources": {"vcs": "webhook"},
        },
    }


def _failed_test(test: dict[str, Any]) -> bool:
    return str(test.get("result") or "").lower() in {"failure", "failed", "error"}


def _actor(pipeline: dict[str, Any]) -> str | None:
    """The login of whoever triggered a pipeline (API v2's `trigger.actor.login`)."""
    login = _map(_map(pipeline, "trigger"), "actor").get("login")
    return login if isinstance(login, str) and login else None


def _map(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _failed_job(job: Job | WorkflowJob, tests: Tests | None, artifacts: list[Artifact] | None) -> FailedJob:
    return {
        "id": job["id"],
        "name": job["name"],
        "number": job["number"],
        "status": job["status"],
        "web_url": job["web_url"],
        "tests": tests,
        "artifacts": artifacts,
    }


def _workflow_job(job: Job) -> WorkflowJob:
    """A job event's job as the one entry of its `jobs`."""
    entry: WorkflowJob = {
        "id": job["id"],
        "name": job["name"],
        "number": job["number"],
        "type": "build",
        "status": job["status"],
        "started_at": job["started_at"],
        "stopped_at": job["stopped_at"],
        "duration_seconds": job["duration_seconds"],
        "web_url": job["web_url"],
    }
    if "executor" in job:
        entry["executor"] = job["executor"]
        entry["parallelism"] = job.get("parallelism")
    return entry


def _job_url(workflow_url: str | None, number: int | None) -> str | None:
    return f"{workflow_url.rstrip('/')}/jobs/{number}" if workflow_url and number is not None else None


def _ms(value: Any) -> float | None:
    return value / 1000 if isinstance(value, int | float) and not isinstance(value, bool) else None


def _first_lines(message: Any) -> str | None:
    if not isinstance(message, str) or not message.strip():
        return None
    text = "\n".join(message.strip().splitlines()[:MESSAGE_LINES])
    return text[:MESSAGE_CHARS] + ("…" if len(text) > MESSAGE_CHARS else "")
