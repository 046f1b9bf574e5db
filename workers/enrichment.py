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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from config.errors import (
    CircleCIAPIError,
    CircleCIForbidden,
    CircleCIRateLimited,
    CircleCIServerError,
    CircleCITimeout,
    CircleCIUnauthorized,
    CircleCIUnreachable,
    EventUndecodable,
)
from workers.circleci.cache import ApiCache
from workers.circleci.client import CircleCIClient
from workers.jobs import WORKFLOW_COMPLETED
from workers.timestamps import duration_seconds
from workers.transition import TransitionStore, ref_name
from workers.vcs import VcsFacts, vcs_facts

SCHEMA_VERSION = 1
RETRYABLE = (CircleCIRateLimited, CircleCIServerError, CircleCITimeout, CircleCIUnreachable)
# CircleCI refused the token (revoked, mistyped, a project token): what an operator must fix first.
REFUSED = (CircleCIUnauthorized, CircleCIForbidden)
# Job statuses that mean "this job broke"; the API knows more than webhooks document (pitfalls A9).
FAILED = frozenset({"failed", "error", "infrastructure_fail", "timedout", "terminated-unknown", "unauthorized"})
MESSAGE_LINES = 5
MESSAGE_CHARS = 500

# The API requests of the current enrichment, one item each; the http client's request hook adds
# them from the pool's threads (list.append is atomic, `n += 1` is not).
api_calls: contextvars.ContextVar[list[None] | None] = contextvars.ContextVar("api_calls", default=None)


def count_api_call() -> None:
    calls = api_calls.get()
    if calls is not None:
        calls.append(None)


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
    ) -> None:
        self.client = client
        self.cache = cache
        self.transitions = transitions
        self.pool = pool
        self.max_failed_tests = max_failed_tests
        self.max_artifacts = max_artifacts
        self.successful_jobs = successful_jobs

    def enrich(self, envelope: dict[str, Any], *, may_defer: bool) -> dict[str, Any]:
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
        try:
            if self.client is None:
                event["enrichment"]["reason"] = "CIRCLE_TOKEN is not set: only the webhook's own facts are shown"
            else:
                if facts.ref is None:
                    facts = self._ref_from_pipeline(event, facts, problems)
                if event["event_type"] == WORKFLOW_COMPLETED:
                    self._workflow(event, payload, problems)
                else:
                    self._job(event, payload, problems)
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
        event["enrichment"]["error_code"] = problems[0].code if problems else None
        event["enrichment"]["complete"] = not problems and self.client is not None
        event["enrichment"]["api_calls"] = len(calls)
        if event["event_type"] == WORKFLOW_COMPLETED:
            event["transition"] = self._transition(event, facts)
            if self.client is not None and (event["transition"] or {}).get("kind") == "broken":
                event["pipeline"]["trigger_actor"] = self._trigger_actor(event)
        return event

    def trigger_actor(self, event: dict[str, Any]) -> str | None:
        """Who triggered the event's pipeline (see _trigger_actor); the approval notice names them."""
        return self._trigger_actor(event) if self.client is not None else None

    def _trigger_actor(self, event: dict[str, Any]) -> str | None:
        """Who triggered the pipeline that broke the ref (mentioned there): one call, cached per
        pipeline, on a break only; None when CircleCI does not say or cannot answer now, which is
        not worth a delay."""
        if event["pipeline"].get("trigger_actor"):  # the pipeline was asked already (a ref-less webhook)
            return str(event["pipeline"]["trigger_actor"])
        calls: list[None] = []
        token = api_calls.set(calls)
        try:
            return _actor(self._pipeline(event["pipeline"]["id"]))
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

    def _ref_from_pipeline(self, event: dict[str, Any], facts: VcsFacts, problems: list[CircleCIAPIError]) -> VcsFacts:
        """The webhook's VCS facts completed by `GET /pipeline/{id}` (cached); on failure the
        webhook's own, with the failure in `problems`."""
        try:
            answer = self._pipeline(event["pipeline"]["id"])
        except CircleCIAPIError as exc:
            problems.append(exc)
            return facts
        # the API's pipeline has the webhook's `vcs` and `trigger_parameters` maps
        completed = facts.filled_from(vcs_facts({"pipeline": answer}))
        event["vcs"] = completed.to_dict()
        event["pipeline"]["trigger_actor"] = _actor(answer)
        event["enrichment"]["sources"]["vcs"] = "pipeline"
        return completed

    # -- the two event types ---------------------------------------------------------------

    def _workflow(self, event: dict[str, Any], payload: dict[str, Any], problems: list[CircleCIAPIError]) -> None:
        assert self.client is not None
        workflow = event["workflow"]
        jobs = self.client.workflow_jobs(workflow["id"])
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
        slug = event["project"]["slug"]
        facets = self._facets(slug, [(j["number"], f) for j in wanted for f in ("tests", "artifacts")], problems)
        event["failed_jobs"] = [
            {
                **_subset(j),
                "tests": self._digest_tests(facets.get((j["number"], "tests"))),
                "artifacts": self._artifact_links(facets.get((j["number"], "artifacts"))),
            }
            for j in wanted
            if j["status"] in FAILED
        ]

    def _job(self, event: dict[str, Any], payload: dict[str, Any], problems: list[CircleCIAPIError]) -> None:
        job = event["job"]
        slug, number = event["project"]["slug"], job["number"]
        failed = job["status"] in FAILED
        wanted = ["details", "tests", "artifacts"] if failed or self.successful_jobs else ["details"]
        facets = self._facets(slug, [(number, f) for f in wanted], problems)
        details = facets.get((number, "details"))
        if details:
            job["web_url"] = job["web_url"] or details.get("web_url")
            job["duration_seconds"] = _ms(details.get("duration")) or job["duration_seconds"]
            job["executor"] = details.get("executor")
            job["parallelism"] = details.get("parallelism")
        event["jobs"] = [{**job, "type": "build"}]
        if failed:
            tests = self._digest_tests(facets.get((number, "tests")))
            artifacts = self._artifact_links(facets.get((number, "artifacts")))
            event["failed_jobs"] = [{**_subset(job), "tests": tests, "artifacts": artifacts}]

    # -- facets of jobs: cached, the missing ones fetched concurrently -----------------------------

    def _facets(
        self, slug: str, wanted: list[tuple[int, str]], problems: list[CircleCIAPIError]
    ) -> dict[tuple[int, str], Any]:
        """The (job number, facet) answers: one cache read, the misses from the API, one cache write."""
        client = self.client
        assert client is not None
        found = self.cache.get_many(slug, wanted)
        missing = [key for key in wanted if key not in found]
        fetch = {
            "details": lambda n: client.job_details(slug, n).to_dict(),
            "tests": lambda n: [t.to_dict() for t in client.job_tests(slug, n)],
            "artifacts": lambda n: [a.to_dict() for a in client.job_artifacts(slug, n)],
        }
        results = self._gather([partial(fetch[facet], number) for number, facet in missing], problems)
        fresh = {key: value for key, value in zip(missing, results, strict=True) if value is not None}
        self.cache.put_many(slug, fresh)
        return found | fresh

    def _digest_tests(self, items: list[dict[str, Any]] | None) -> dict[str, Any] | None:
        if items is None:
            return None
        failures = [t for t in items if str(t.get("result") or "").lower() in {"failure", "failed", "error"}]
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

    def _artifact_links(self, items: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if items is None:
            return None
        links = [{"path": a.get("path"), "url": a.get("url"), "node_index": a.get("node_index")} for a in items]
        return links[: self.max_artifacts]

    def _gather(self, calls: list[Callable[[], Any]], problems: list[CircleCIAPIError]) -> list[Any]:
        """Run independent calls on the pool (with this context); a failed one gives None."""
        futures = [self.pool.submit(contextvars.copy_context().run, call) for call in calls]
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except CircleCIAPIError as exc:
                problems.append(exc)
                results.append(None)
        return results

    def _transition(self, event: dict[str, Any], facts: VcsFacts) -> dict[str, Any] | None:
        subject = transition_subject(event, facts)
        return None if subject is None else self.transitions.record(**subject).to_dict()


def transition_subject(event: dict[str, Any], facts: VcsFacts) -> dict[str, Any] | None:
    """What a workflow event's transition is recorded under (TransitionStore.record's arguments):
    project, ref (`tag:` before a tag), workflow, status, pipeline number, happened_at. None
    when it has no transition: neither branch nor tag known, or no workflow status."""
    workflow = event["workflow"]
    if facts.ref is None or not workflow.get("status"):
        return None
    return {
        "project": event["project"]["slug"],
        "ref": ref_name(facts.branch, facts.tag) or facts.ref,
        "workflow": workflow["name"],
        "status": workflow["status"],
        "pipeline_number": event["pipeline"]["number"],
        "happened_at": event["happened_at"],
    }


def from_webhook(envelope: dict[str, Any], facts: VcsFacts) -> dict[str, Any]:
    """Everything the webhook itself says, in the enriched event's shape."""
    p = envelope["payload"]
    project, org, pipeline = p["project"], p["organization"], p["pipeline"]
    wf, job = p.get("workflow"), p.get("job")
    workflow = None
    if isinstance(wf, dict):
        workflow = {k: wf.get(k) for k in ("id", "name", "status", "url", "created_at", "stopped_at")}
        workflow["duration_seconds"] = duration_seconds(wf.get("created_at"), wf.get("stopped_at"))
    job_entry = None
    if isinstance(job, dict):
        job_entry = {k: job.get(k) for k in ("id", "number", "name", "status", "started_at", "stopped_at")}
        job_entry["duration_seconds"] = duration_seconds(job.get("started_at"), job.get("stopped_at"))
        job_entry["web_url"] = _job_url(workflow["url"] if workflow else None, job.get("number"))
    subject = job_entry or workflow or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": envelope["event_id"],
        "event_type": envelope["event_type"],
        "happened_at": p.get("happened_at"),
        "received_at": envelope.get("received_at"),
        "request_id": envelope.get("request_id"),
        "status": subject.get("status"),
        "project": {k: project.get(k) for k in ("id", "slug", "name")},
        "organization": {k: org.get(k) for k in ("id", "name")},
        "pipeline": {
            "id": pipeline.get("id"),
            "number": pipeline.get("number"),
            "created_at": pipeline.get("created_at"),
            "trigger_type": (pipeline.get("trigger") or {}).get("type"),
            "trigger_actor": None,  # who triggered it: only GET /pipeline/{id} says
        },
        "vcs": facts.to_dict(),
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


def _actor(pipeline: dict[str, Any]) -> str | None:
    """The login of whoever triggered a pipeline (API v2's `trigger.actor.login`)."""
    login = _map(_map(pipeline, "trigger"), "actor").get("login")
    return login if isinstance(login, str) and login else None


def _map(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _subset(job: dict[str, Any]) -> dict[str, Any]:
    return {k: job.get(k) for k in ("id", "name", "number", "status", "web_url")}


def _job_url(workflow_url: str | None, number: int | None) -> str | None:
    return f"{workflow_url.rstrip('/')}/jobs/{number}" if workflow_url and number is not None else None


def _ms(value: Any) -> float | None:
    return value / 1000 if isinstance(value, int | float) and not isinstance(value, bool) else None


def _first_lines(message: Any) -> str | None:
    if not isinstance(message, str) or not message.strip():
        return None
    text = "\n".join(message.strip().splitlines()[:MESSAGE_LINES])
    return text[:MESSAGE_CHARS] + ("…" if len(text) > MESSAGE_CHARS else "")
