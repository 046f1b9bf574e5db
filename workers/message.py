"""The neutral message: what every notification says, built once from an enriched event.

Pure data with no platform escaping: each handler escapes for its own platform. Any field of
the event may be missing or null (enrichment incomplete); the message then says less, never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from workers.jobs import APPROVAL_PENDING
from workers.timestamps import duration_seconds
from workers.transition import KINDS

MAX_TESTS = 5
MAX_ARTIFACTS = 5
SAMPLE_EVENT_FILE = Path(__file__).parent.parent / "config" / "sample-event.yaml"

EMOJI = {"on_hold": "⏸️", "success": "✅", "failed": "❌", "error": "💥", "canceled": "🚫", "unauthorized": "🔒"}
COLOUR = {
    "on_hold": 0xECB22E,
    "success": 0x2EB67D,
    "failed": 0xE01E5A,
    "error": 0xB00020,
    "canceled": 0x9E9E9E,
    "unauthorized": 0xECB22E,
}
VERB = {
    "on_hold": "waits for approval",
    "success": "succeeded",
    "failed": "failed",
    "error": "errored",
    "canceled": "was canceled",
    "unauthorized": "was unauthorized",
}
TRANSITION = {
    "broken": "broke {ref}",
    "fixed": "fixed {ref}",
    "still_failing": "still failing on {ref}",
    "passing": "still passing on {ref}",
    "first_seen": "first run seen on {ref}",
    "canceled": "canceled on {ref}",
    "stale": "older than the last run seen on {ref}",
}


@dataclass(frozen=True)
class Link:
    label: str
    url: str | None


@dataclass(frozen=True)
class FailedTest:
    name: str
    classname: str
    file: str
    message: str
    known_flaky: int | None = None  # times it flaked in the last 14 days (Insights), when known to

    @property
    def flaky_mark(self) -> str | None:
        """`known flaky, 7× in 14 days`."""  # noqa: RUF002 - the sign people read
        return None if self.known_flaky is None else f"known flaky, {self.known_flaky}\u00d7 in 14 days"


@dataclass(frozen=True)
class FailedStep:
    """The failing step of a failed job and the end of its output (raw: each platform escapes)."""

    name: str
    status: str | None
    exit_code: int | None
    node_index: int | None
    log_tail: str | None
    truncated: bool
    reason: str | None  # why there is no tail

    @property
    def outcome(self) -> str:
        """`exit 1`, `timedout`, `failed · node 3`."""
        said = f"exit {self.exit_code}" if self.exit_code is not None else (self.status or "failed")
        return said + (f" · node {self.node_index}" if self.node_index else "")


@dataclass(frozen=True)
class FailedJob:
    name: str
    url: str | None
    tests_failed: int
    step: FailedStep | None = None


@dataclass(frozen=True)
class Message:
    """What a notification says. `text` is the plain-text fallback."""

    event_id: str
    event_type: str
    title: str
    status: str
    status_verb: str
    emoji: str
    colour: int
    project: str
    project_slug: str
    ref: str | None
    ref_kind: str | None
    workflow: Link | None
    job: Link | None
    pipeline_number: int | None
    commit_subject: str | None
    commit_author: str | None
    revision: str | None
    duration: str | None
    transition: str | None
    transition_phrase: str | None
    failed_jobs: tuple[FailedJob, ...]
    failed_tests: tuple[FailedTest, ...]
    more_failed_tests: int
    artifacts: tuple[Link, ...]
    happened_at: str | None
    incomplete: bool
    incomplete_reason: str | None
    text: str
    # the breakage (workers/transition.py's streak): the pipeline that broke the ref, how many
    # pipelines have failed, and for how long (`2 h 5 min`) until this event
    failing_since_pipeline_number: int | None = None
    failed_pipelines: int | None = None
    failing_for: str | None = None
    # every failing job failed only tests Insights knows to flake
    only_known_flaky: bool = False

    @property
    def url(self) -> str | None:
        """The page to open first: the job's for job events, else the workflow's."""
        return (self.job and self.job.url) or (self.workflow and self.workflow.url) or None

    @property
    def fix_phrase(self) -> str:
        """`after 3 failed pipelines · 2 h`: how long a fixed breakage lasted."""
        count = self.failed_pipelines or 1
        took = f" · {self.failing_for}" if self.failing_for else ""
        return f"after {count} failed pipeline{'s' if count != 1 else ''}{took}"

    def failed_steps(self) -> list[dict[str, Any]]:
        """Each failed job's failing step as data: `{job, step, outcome, log_tail, no_log_tail}`."""
        return [
            {
                "job": j.name,
                "step": j.step.name,
                "outcome": j.step.outcome,
                "log_tail": j.step.log_tail,
                "no_log_tail": j.step.reason,
            }
            for j in self.failed_jobs
            if j.step
        ]

    @property
    def ref_label(self) -> str | None:
        """`branch main` or `tag v1.2.0`."""
        return f"{self.ref_kind or 'ref'} {self.ref}" if self.ref else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Message:
        """Build the message; tolerant of missing and null fields."""
        e = _Event(event)
        status = e.str("status") or "unknown"
        project_slug = e.str("project", "slug") or ""
        project = e.str("project", "name") or project_slug.rpartition("/")[2] or "unknown project"
        tag, branch = e.str("vcs", "tag"), e.str("vcs", "branch")
        ref, ref_kind = (tag, "tag") if tag else (branch, "branch") if branch else (None, None)
        workflow = _link(e.str("workflow", "name"), e.str("workflow", "url"))
        job = _link(e.str("job", "name"), e.str("job", "web_url"))
        pipeline = e.get("pipeline", "number")
        pipeline_number = pipeline if isinstance(pipeline, int) and not isinstance(pipeline, bool) else None
        subject = (e.str("vcs", "commit_subject") or "").strip().splitlines()
        kind = e.str("transition", "kind")
        phrase = TRANSITION[kind].format(ref=ref or "the build") if kind in TRANSITION else kind
        failed_jobs, tests, failed_total = _failures(e.get("failed_jobs"))
        verb = VERB.get(status, f"finished ({status})")
        subject_name = (
            job or workflow or Link("job" if e.str("event_type") == "job-completed" else "workflow", None)
        ).label
        title = f"{EMOJI.get(status, '❔')} {subject_name} {verb}"
        if e.str("event_type") == APPROVAL_PENDING:
            # the approval job waits in its workflow: `⏸️ deploy waits for approval: hold-for-deploy`
            waiting_workflow = workflow.label if workflow else "workflow"
            title = f"{EMOJI['on_hold']} {waiting_workflow} waits for approval: {subject_name}"
            actor = e.str("pipeline", "trigger_actor")
            phrase = f"approval needed for {subject_name}" + (f" · pipeline triggered by {actor}" if actor else "")
        title += f" on {ref}" if ref else ""
        title += f" — {project}" + (f" #{pipeline_number}" if pipeline_number is not None else "")
        enrichment = e.get("enrichment")
        complete = enrichment.get("complete") if isinstance(enrichment, Mapping) else None
        message = cls(
            event_id=e.str("event_id") or "",
            event_type=e.str("event_type") or "",
            title=title,
            status=status,
            status_verb=verb,
            emoji=EMOJI.get(status, "❔"),
            colour=COLOUR.get(status, 0x9E9E9E),
            project=project,
            project_slug=project_slug,
            ref=ref,
            ref_kind=ref_kind,
            workflow=workflow,
            job=job,
            pipeline_number=pipeline_number,
            commit_subject=subject[0][:1000] if subject else None,
            commit_author=e.str("vcs", "author_name"),
            revision=(e.str("vcs", "revision") or "")[:7] or None,
            duration=_duration(e.get("job" if job else "workflow", "duration_seconds")),
            transition=kind,
            transition_phrase=phrase,
            failed_jobs=failed_jobs,
            failed_tests=tuple(tests[:MAX_TESTS]),
            more_failed_tests=max(0, failed_total - min(len(tests), MAX_TESTS)),
            artifacts=_artifacts(e.get("failed_jobs")),
            happened_at=e.str("happened_at"),
            incomplete=complete is not True,
            incomplete_reason=(enrichment.get("reason") if isinstance(enrichment, Mapping) else None)
            or (None if complete is True else "enrichment missing"),
            text="",
            failing_since_pipeline_number=_int(e.get("transition", "failing_since_pipeline_number")),
            failed_pipelines=_int(e.get("transition", "failed_pipelines")),
            failing_for=elapsed(duration_seconds(e.get("transition", "failing_since"), e.get("happened_at"))),
            only_known_flaky=e.get("only_known_flaky") is True,
        )
        return _with_text(message)


def sample_event() -> dict[str, Any]:
    """The enriched event templates are checked against (a copy of the repository's fixture)."""
    with SAMPLE_EVENT_FILE.open(encoding="utf-8") as f:
        return dict(yaml.safe_load(f))


def sample_events() -> list[tuple[str, dict[str, Any]]]:
    """Every shape a template meets, each with a label: the sample workflow event with each
    transition kind (green, without failed jobs, for passing and fixed) and with none (the state
    could not be read), and a job event (no transition)."""
    workflow = sample_event()
    passed = {
        **workflow,
        "status": "success",
        "workflow": {**workflow["workflow"], "status": "success"},
        "jobs": [{**j, "status": "success"} for j in workflow["jobs"]],
        "failed_jobs": [],
    }
    events = [
        (f"workflow-completed, transition {kind}", _with_transition(passed if kind in PASSED else workflow, kind))
        for kind in KINDS
    ]
    events.append(("workflow-completed, no transition", {**workflow, "transition": None}))
    failed = next(j for j in workflow["jobs"] if j["status"] == "failed")
    job = {k: failed[k] for k in ("id", "number", "name", "status", "started_at", "stopped_at", "duration_seconds")}
    job |= {"web_url": failed["web_url"], "executor": {"resource_class": "medium", "type": "docker"}, "parallelism": 1}
    events.append(
        (
            "job-completed",
            {
                **workflow,
                "event_type": "job-completed",
                "status": job["status"],
                "workflow": {**workflow["workflow"], "status": None},
                "job": job,
                "jobs": [{**job, "type": "build"}],
                "failed_jobs": [j for j in workflow["failed_jobs"] if j["name"] == job["name"]],
                "transition": None,
            },
        )
    )
    return events


PASSED = ("passing", "fixed")  # transitions to a green build: no failed jobs


def _with_transition(event: dict[str, Any], kind: str) -> dict[str, Any]:
    return {**event, "transition": {**event["transition"], "kind": kind}}


class _Event:
    def __init__(self, event: Mapping[str, Any]) -> None:
        self.event = event if isinstance(event, Mapping) else {}

    def get(self, *path: str) -> Any:
        value: Any = self.event
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    def str(self, *path: str) -> str | None:
        value = self.get(*path)
        return None if value is None or isinstance(value, Mapping | list) else str(value)


def _link(label: str | None, url: str | None) -> Link | None:
    return Link(label, url) if label else (Link("open", url) if url else None)


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _failures(value: Any) -> tuple[tuple[FailedJob, ...], list[FailedTest], int]:
    jobs, tests, total = [], [], 0
    for job in _dicts(value):
        raw = job.get("tests")
        t: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        failures = [
            FailedTest(
                _s(f.get("name")),
                _s(f.get("classname")),
                _s(f.get("file")),
                _s(f.get("message")),
                _int(_mapping(f.get("known_flaky")).get("times_flaked")),
            )
            for f in _dicts(t.get("failures"))
        ]
        count = t.get("failed")
        more = t.get("more")
        count = count if isinstance(count, int) else len(failures) + (more if isinstance(more, int) else 0)
        step = _step(job.get("failed_step"))
        jobs.append(FailedJob(_s(job.get("name")) or "job", _s(job.get("web_url")) or None, count, step))
        tests.extend(failures)
        total += max(count, len(failures))
    return tuple(jobs), tests, total


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _step(value: Any) -> FailedStep | None:
    if not isinstance(value, Mapping):
        return None
    tail = value.get("log_tail")
    return FailedStep(
        name=_s(value.get("name")) or "a step",
        status=value.get("status") if isinstance(value.get("status"), str) else None,
        exit_code=_int(value.get("exit_code")),
        node_index=_int(value.get("node_index")),
        log_tail=tail if isinstance(tail, str) and tail.strip() else None,
        truncated=value.get("truncated") is True,
        reason=value.get("reason") if isinstance(value.get("reason"), str) else None,
    )


def _artifacts(value: Any) -> tuple[Link, ...]:
    links = [
        Link(_s(a.get("path")) or _s(a.get("url")), _s(a.get("url")))
        for job in _dicts(value)
        for a in _dicts(job.get("artifacts"))
        if a.get("url")
    ]
    return tuple(links[:MAX_ARTIFACTS])


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return None
    s = round(seconds)
    hours, minutes, secs = s // 3600, s % 3600 // 60, s % 60
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def elapsed(seconds: float | None) -> str | None:
    """A stretch of time as a person says it: `45 s`, `12 min`, `2 h 5 min`, `3 d 4 h`."""
    if seconds is None:
        return None
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 >= 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 >= 3600 else "")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _with_text(m: Message) -> Message:
    lines = [m.title]
    if m.transition_phrase:
        lines.append(f"Transition: {m.transition_phrase}")
    if m.commit_subject:
        lines.append(f"Commit: {m.commit_subject}" + (f" ({m.commit_author})" if m.commit_author else ""))
    if m.failed_jobs:
        lines.append("Failed jobs: " + ", ".join(j.name for j in m.failed_jobs))
    lines += [f"Failed step: {j.name}: {j.step.name} ({j.step.outcome})" for j in m.failed_jobs if j.step]
    if m.failed_tests:
        more = f" and {m.more_failed_tests} more" if m.more_failed_tests else ""
        flaky = " (only known-flaky tests failed)" if m.only_known_flaky else ""
        lines.append("Failed tests: " + ", ".join(t.name for t in m.failed_tests) + more + flaky)
    if m.url:
        lines.append(m.url)
    if m.incomplete:
        lines.append(f"(incomplete: {m.incomplete_reason})")
    return replace(m, text="\n".join(lines))
