"""The enriched event (schema version 1): its one typed home.

workers/enrichment.py builds it and nothing else does; handlers, templates, webhook bodies and
stored records read it. At runtime it is a plain dict (JSON in Redis, the body a webhook
handler signs): these TypedDicts only let mypy name every reader of a field, and
`json_schema()` (workers/event_schema.py) turns them into the JSON Schema shipped for webhook
consumers (config/enriched-event.schema.json). A field may be null when CircleCI did not say or
the API could not be asked; `enrichment.complete` says which. New fields are additive: readers
of stored events must tolerate their absence (`NotRequired`).
"""

# no `from __future__ import annotations`: Python 3.11 sees NotRequired only in evaluated annotations
from typing import Literal, NotRequired, TypedDict

__all__ = [
    "Artifact",
    "EnrichedEvent",
    "Enrichment",
    "FailedJob",
    "FailedStep",
    "FailedTest",
    "Job",
    "KnownFlaky",
    "Organization",
    "Pipeline",
    "Project",
    "Sources",
    "Tests",
    "Transition",
    "Vcs",
    "Workflow",
    "WorkflowJob",
]

SCHEMA_VERSION = 1


class Project(TypedDict):
    id: str | None
    slug: str | None  # as CircleCI sent it: github/org/repo or circleci/<org-id>/<project-id>
    name: str | None


class Organization(TypedDict):
    id: str | None
    name: str | None


class Pipeline(TypedDict):
    id: str | None
    number: int | None
    created_at: str | None
    trigger_type: str | None
    trigger_actor: str | None  # the VCS login that triggered it; only GET /pipeline/{id} says


class Vcs(TypedDict):
    provider: str | None
    branch: str | None
    tag: str | None
    ref_kind: str | None
    revision: str | None
    commit_subject: str | None
    commit_body: str | None
    author_name: str | None
    author_email: str | None
    repository_url: str | None


class Workflow(TypedDict):
    id: str | None
    name: str | None
    status: str | None  # null in job events
    url: str | None
    created_at: str | None
    stopped_at: str | None
    duration_seconds: float | None


class Job(TypedDict):
    """The job of a job-completed event; `executor` and `parallelism` once its details are read."""

    id: str | None
    number: int | None
    name: str | None
    status: str | None
    started_at: str | None
    stopped_at: str | None
    duration_seconds: float | None
    web_url: str | None
    executor: NotRequired[dict[str, str | None] | None]
    parallelism: NotRequired[int | None]


class WorkflowJob(Job):
    """One job of the workflow (`jobs`); approval jobs have `number: null`."""

    type: str | None


class KnownFlaky(TypedDict):
    """Insights' count of this test's flakes (passed and failed on one commit) over 14 days."""

    times_flaked: int


class FailedTest(TypedDict):
    name: str | None
    classname: str | None
    file: str | None
    message: str | None  # the first lines
    known_flaky: NotRequired[KnownFlaky | None]


class Tests(TypedDict):
    total: int
    failed: int
    more: int  # failures beyond the ones listed
    failures: list[FailedTest]


class Artifact(TypedDict):
    path: str | None
    url: str | None
    node_index: int | None


class FailedStep(TypedDict):
    """The job's first step that broke (not a background step, not `insignificant`, status not
    success, running or canceled) on its first failing node, with the end of its output,
    secrets masked. `log_tail` is null when it could not be had: `reason` says why."""

    name: str | None
    status: str | None  # failed, timedout (no-output timeout: exit_code null), …
    exit_code: int | None
    node_index: int | None
    log_tail: str | None
    truncated: bool  # the tail is the end of a longer output
    source: Literal["v1.1"]
    reason: str | None


class FailedJob(TypedDict):
    id: str | None
    name: str | None
    number: int | None
    status: str | None
    web_url: str | None
    tests: Tests | None
    artifacts: list[Artifact] | None
    failed_step: NotRequired[FailedStep | None]


class Transition(TypedDict):
    kind: str
    previous_status: str | None
    previous_pipeline_number: int | None
    failing_since_pipeline_number: int | None
    failing_since: str | None
    failed_pipelines: int | None


class Sources(TypedDict):
    vcs: Literal["webhook", "pipeline"]


class Enrichment(TypedDict):
    complete: bool
    reason: str | None  # the first problem; else the first note
    error_code: str | None
    api_calls: int
    sources: Sources
    # why an optional part is missing (a log tail, the known-flaky marks); never makes it incomplete
    notes: NotRequired[list[str]]


class Approval(TypedDict):
    """An approval job on hold, in an `approval-pending` event the worker derives (workers/approvals.py)."""

    approval_request_id: str
    job_id: str | None
    job_name: str | None
    workflow_id: str | None
    derived_from: str | None  # the job-completed event that revealed it


class EnrichedEvent(TypedDict):
    schema_version: int
    event_id: str
    event_type: Literal["workflow-completed", "job-completed", "approval-pending"]
    happened_at: str | None
    received_at: str | None
    request_id: str | None
    status: str | None
    project: Project
    organization: Organization
    pipeline: Pipeline
    vcs: Vcs
    workflow: Workflow | None
    job: Job | None
    jobs: list[WorkflowJob]
    failed_jobs: list[FailedJob]
    # every failing job failed only tests Insights knows to flake
    only_known_flaky: NotRequired[bool]
    transition: Transition | None
    approval: NotRequired[Approval]  # approval-pending events only
    enrichment: Enrichment
