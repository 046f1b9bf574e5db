"""Typed results of the CircleCI API v2 client.

Each model is a frozen dataclass built with `from_dict`, which takes the fields it knows,
leaves the others in `raw`, and defaults what is missing: CircleCI adds fields over time and
omits optional ones (https://circleci.com/docs/api/v2/). Hyphenated keys (`created-at`,
`public-key`, the insights fields) map to snake_case attributes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, Self, cast

__all__ = [
    "Artifact",
    "CheckoutKey",
    "Context",
    "ContextEnvVar",
    "FlakyTest",
    "Job",
    "JobDetails",
    "Pipeline",
    "PipelineCreated",
    "Project",
    "ProjectEnvVar",
    "TestResult",
    "User",
    "Webhook",
    "Workflow",
]


class _Model:
    raw: Mapping[str, Any]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from an API object; unknown keys stay in `raw`, missing ones default."""
        known = _field_names(cast(Hashable, cls))
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = key.replace("-", "_")
            if name in known:
                values[name] = tuple(value) if isinstance(value, list) else value
        values["raw"] = dict(data)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The API object as received, for queue arguments and caches."""
        return dict(self.raw)


@cache
def _field_names(cls: Hashable) -> frozenset[str]:
    return frozenset(f.name for f in fields(cast(Any, cls))) - {"raw"}


def _raw() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class User(_Model):
    id: str | None = None
    login: str | None = None
    name: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class PipelineCreated(_Model):
    """The answer to a trigger. `skipped` is True when `pipeline/run` answered a non-201 success."""

    id: str | None = None
    state: str | None = None
    number: int | None = None
    created_at: str | None = None
    message: str | None = None
    skipped: bool = False
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class Pipeline(_Model):
    id: str | None = None
    number: int | None = None
    project_slug: str | None = None
    state: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    errors: tuple[Mapping[str, Any], ...] = ()
    trigger: Mapping[str, Any] | None = None
    vcs: Mapping[str, Any] | None = None
    trigger_parameters: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class Workflow(_Model):
    id: str | None = None
    name: str | None = None
    status: str | None = None
    pipeline_id: str | None = None
    pipeline_number: int | None = None
    project_slug: str | None = None
    created_at: str | None = None
    stopped_at: str | None = None
    started_by: str | None = None
    canceled_by: str | None = None
    errored_by: str | None = None
    tag: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class Job(_Model):
    """A job of a workflow. Approval jobs have no `job_number` (SPEC-2025 listWorkflowJobs)."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    status: str | None = None
    job_number: int | None = None
    project_slug: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    dependencies: tuple[str, ...] = ()
    approval_request_id: str | None = None
    approved_by: str | None = None
    canceled_by: str | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def is_approval(self) -> bool:
        """True for approval jobs; job endpoints cannot be called for them."""
        return self.type == "approval" or self.job_number is None


@dataclass(frozen=True)
class JobDetails(_Model):
    number: int | None = None
    name: str | None = None
    status: str | None = None  # null in the docs' own example (pitfalls B5)
    web_url: str | None = None
    created_at: str | None = None
    queued_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    duration: int | None = None
    parallelism: int | None = None
    executor: Mapping[str, Any] | None = None
    project: Mapping[str, Any] | None = None
    pipeline: Mapping[str, Any] | None = None
    latest_workflow: Mapping[str, Any] | None = None
    organization: Mapping[str, Any] | None = None
    contexts: tuple[Mapping[str, Any], ...] = ()
    messages: tuple[Mapping[str, Any], ...] = ()
    parallel_runs: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class TestResult(_Model):
    """One test case. `result` is a free string: success, failure, skipped, ... (pitfalls B3)."""

    __test__ = False  # not a pytest class

    name: str | None = None
    classname: str | None = None
    result: str | None = None
    message: str | None = None
    file: str | None = None
    source: str | None = None
    run_time: float | str | None = None  # the MCP server accepts string or number
    raw: Mapping[str, Any] = _raw()

    @property
    def failed(self) -> bool:
        return (self.result or "").lower() in {"failure", "failed", "error"}


@dataclass(frozen=True)
class Artifact(_Model):
    path: str | None = None
    node_index: int | None = None
    url: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class Context(_Model):
    id: str | None = None
    name: str | None = None
    created_at: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class ContextEnvVar(_Model):
    """A context variable's metadata; CircleCI never returns the value."""

    variable: str | None = None
    context_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class ProjectEnvVar(_Model):
    """A project variable; `value` comes back masked (`xxxx` + the last four characters)."""

    name: str | None = None
    value: str | None = None
    created_at: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class Project(_Model):
    """`GET /project/{slug}`; `id` is the scope of the project's webhooks."""

    id: str | None = None
    slug: str | None = None
    name: str | None = None
    organization_name: str | None = None
    organization_slug: str | None = None
    organization_id: str | None = None
    vcs_info: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class Webhook(_Model):
    """An outbound webhook. SPEC-2025 answers `verify-tls`, `signing-secret`, `created-at`; the
    2026 schema `verify_tls`, `signing_secret`, `created_at` (pitfalls B9): both land here.
    `signing_secret` comes back masked, and is kept out of `repr` all the same."""

    id: str | None = None
    name: str | None = None
    url: str | None = None
    events: tuple[str, ...] = ()
    verify_tls: bool | None = None
    signing_secret: str | None = field(default=None, repr=False)
    scope: Mapping[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class CheckoutKey(_Model):
    fingerprint: str | None = None
    type: str | None = None
    preferred: bool | None = None
    public_key: str | None = None
    created_at: str | None = None
    raw: Mapping[str, Any] = _raw()


@dataclass(frozen=True)
class FlakyTest(_Model):
    test_name: str | None = None
    classname: str | None = None
    file: str | None = None
    source: str | None = None
    job_name: str | None = None
    job_number: int | None = None
    workflow_name: str | None = None
    workflow_id: str | None = None
    workflow_created_at: str | None = None
    pipeline_number: int | None = None
    times_flaked: int | None = None
    time_wasted: int | None = None
    raw: Mapping[str, Any] = _raw()
