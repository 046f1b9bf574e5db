"""The CircleCI API v2 client: one method per operation, returning typed results.

It holds a `CircleCITransport` (retries, errors, pagination, where the token may go:
workers/circleci/transport.py) and builds it from the keyword arguments it is given, or from
the settings (`from_settings`): one way to build either.

Slugs are used exactly as given (gh/, github/, bb/, bitbucket/, circleci/<org>/<project>):
"A project slug must be treated as an opaque string" (API developer's guide, "Getting
started"), and its `/` stay path separators. Every path is built by workers/circleci/path.py: each id,
name and slug part one percent-encoded segment, so payload data cannot walk or split a path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from config.errors import CircleCIInvalidResponse, CircleCIJobNumberMissing
from config.settings import Settings
from config.settings import v1_url as settings_v1_url
from workers.circleci.models import (
    Artifact,
    CheckoutKey,
    Context,
    ContextEnvVar,
    FlakyTest,
    Job,
    JobDetails,
    Pipeline,
    PipelineCreated,
    Project,
    ProjectEnvVar,
    TestResult,
    User,
    Webhook,
    Workflow,
)
from workers.circleci.path import api_path
from workers.circleci.transport import DEFAULT_TIMEOUT, CircleCITransport, parse_retry_after

__all__ = ["DEFAULT_TIMEOUT", "CircleCIClient", "parse_retry_after"]

# API v1.1 names the VCS in full where v2 slugs may abbreviate it
V1_VCS = {"gh": "github", "bb": "bitbucket"}


def _job_path(slug: str, job_number: int | None, template: str) -> str:
    """Approval jobs have no job number (pitfalls B5): refuse before any call is made."""
    if job_number is None or isinstance(job_number, bool):
        raise CircleCIJobNumberMissing(
            f"job endpoints need a job number, got {job_number!r} for {slug}; approval jobs "
            "have none, so filter them out with Job.is_approval",
            path=template.format(slug=slug, n="{job-number}"),
        )
    return api_path(template, slug=slug, n=int(job_number))


def _webhook_body(
    *,
    name: str | None,
    url: str | None,
    events: Sequence[str] | None,
    signing_secret: str | None,
    verify_tls: bool | None,
) -> dict[str, Any]:
    """The request body's hyphenated keys (both spec versions take `verify-tls`, `signing-secret`)."""
    fields = {
        "name": name,
        "url": url,
        "events": list(events) if events is not None else None,
        "signing-secret": signing_secret,
        "verify-tls": verify_tls,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _message(body: Any) -> str:
    return str(body.get("message", "")) if isinstance(body, dict) else ""


class CircleCIClient:
    """The API v2 client. Build one per process (an httpx client costs ~27 ms of CPU) and share
    it between threads; the keyword arguments are CircleCITransport's."""

    def __init__(self, *, v1_url: str | None = None, **transport_options: Any) -> None:
        self.transport = CircleCITransport(**transport_options)
        self.v1_url = v1_url or settings_v1_url(self.transport.base_url)

    @classmethod
    def from_settings(cls, settings: Settings, **transport_options: Any) -> CircleCIClient:
        return cls(
            base_url=settings.circleci_api_url,
            token=settings.circle_token,
            artifact_hosts=settings.artifact_hosts,
            **transport_options,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.transport.base_url!r})"

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The transport's calls, for the operations this client has no method for.
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.transport.request(method, path, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.transport.json(method, path, **kwargs)

    def paginate(self, path: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self.transport.paginate(path, **kwargs)

    # -- user -----------------------------------------------------------------------------

    def me(self) -> User:
        """The token's user; the way to check a token (v2 answers 404 for many bad tokens)."""
        return User.from_dict(self.json("GET", "/me"))

    def organization_slugs(self) -> list[str]:
        """`GET /me/collaborations`: the slugs (`gh/acme`) of the organizations the token's user
        belongs to or collaborates in (one answer, no pages)."""
        answer = self.json("GET", "/me/collaborations")
        items = answer if isinstance(answer, list) else []
        return [str(item["slug"]) for item in items if isinstance(item, dict) and item.get("slug")]

    # -- pipelines ------------------------------------------------------------------------

    def trigger_pipeline(
        self,
        slug: str,
        *,
        branch: str | None = None,
        tag: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> PipelineCreated:
        """`POST /project/{slug}/pipeline`; not for GitLab or GitHub App projects (SPEC-2025)."""
        if branch and tag:
            raise ValueError("branch and tag are mutually exclusive")
        body: dict[str, Any] = {}
        if branch:
            body["branch"] = branch
        if tag:
            body["tag"] = tag
        if parameters:
            body["parameters"] = dict(parameters)
        path = api_path("/project/{slug}/pipeline", slug=slug)
        return PipelineCreated.from_dict(self.json("POST", path, json=body))

    def run_pipeline(
        self,
        slug: str,
        *,
        definition_id: str | None = None,
        config: Mapping[str, str] | None = None,
        checkout: Mapping[str, str] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> PipelineCreated:
        """`POST /project/{provider}/{org}/{project}/pipeline/run`; a non-201 success = skipped.

        The slug must be three real path segments: one %2F-escaped segment gives 404
        (circleci-cli internal/apiclient pipeline_definition.go).
        """
        body: dict[str, Any] = {}
        for key, value in (
            ("definition_id", definition_id),
            ("config", config),
            ("checkout", checkout),
            ("parameters", parameters),
        ):
            if value:
                body[key] = dict(value) if isinstance(value, Mapping) else value
        path = api_path("/project/{slug}/pipeline/run", slug=slug)
        response = self.request("POST", path, json=body)
        data = self.transport.decode(response, "POST", path)
        created = PipelineCreated.from_dict(data)
        if response.status_code != 201:
            return PipelineCreated(message=_message(data), skipped=True, raw=data)
        return created

    def pipeline(self, pipeline_id: str) -> Pipeline:
        return Pipeline.from_dict(self.json("GET", api_path("/pipeline/{pipeline_id}", pipeline_id=pipeline_id)))

    def pipelines(self, slug: str, *, branch: str | None = None, max_pages: int | None = None) -> Iterator[Pipeline]:
        """A project's pipelines, newest first, lazily across pages."""
        params = {"branch": branch} if branch else None
        path = api_path("/project/{slug}/pipeline", slug=slug)
        for item in self.paginate(path, params=params, max_pages=max_pages):
            yield Pipeline.from_dict(item)

    def org_pipelines(self, org_slug: str, *, max_pages: int | None = None) -> Iterator[Pipeline]:
        """`GET /pipeline?org-slug=`: the recent pipelines of the most recently built projects
        (at most 250) the token's user follows in the organization, lazily across pages."""
        for item in self.paginate("/pipeline", params={"org-slug": org_slug}, max_pages=max_pages):
            yield Pipeline.from_dict(item)

    def pipeline_workflows(self, pipeline_id: str) -> list[Workflow]:
        items = self.paginate(api_path("/pipeline/{pipeline_id}/workflow", pipeline_id=pipeline_id))
        return [Workflow.from_dict(i) for i in items]

    # -- workflows ------------------------------------------------------------------------

    def workflow(self, workflow_id: str) -> Workflow:
        return Workflow.from_dict(self.json("GET", api_path("/workflow/{workflow_id}", workflow_id=workflow_id)))

    def workflow_jobs(self, workflow_id: str) -> list[Job]:
        """All jobs of a workflow, every page; approval jobs included (see Job.is_approval)."""
        path = api_path("/workflow/{workflow_id}/job", workflow_id=workflow_id)
        return [Job.from_dict(i) for i in self.paginate(path)]

    def cancel_workflow(self, workflow_id: str) -> str:
        path = api_path("/workflow/{workflow_id}/cancel", workflow_id=workflow_id)
        body = self.json("POST", path, idempotent=True)
        return _message(body)

    def rerun_workflow(
        self,
        workflow_id: str,
        *,
        from_failed: bool = False,
        jobs: list[str] | None = None,
        enable_ssh: bool | None = None,
        sparse_tree: bool | None = None,
    ) -> str:
        """Rerun; returns the new workflow's id. `from_failed` excludes `jobs` (SPEC-2025)."""
        if from_failed and jobs:
            raise ValueError("from_failed and jobs are mutually exclusive")
        path = api_path("/workflow/{workflow_id}/rerun", workflow_id=workflow_id)
        body: dict[str, Any] = {"from_failed": True} if from_failed else {}
        if jobs:
            body["jobs"] = list(jobs)
        if enable_ssh is not None:
            body["enable_ssh"] = enable_ssh
        if sparse_tree is not None:
            body["sparse_tree"] = sparse_tree
        data = self.json("POST", path, json=body)
        return str(data.get("workflow_id", "")) if isinstance(data, dict) else ""

    def approve_job(self, workflow_id: str, approval_request_id: str) -> str:
        path = api_path(
            "/workflow/{workflow_id}/approve/{approval_request_id}",
            workflow_id=workflow_id,
            approval_request_id=approval_request_id,
        )
        return _message(self.json("POST", path, idempotent=True))

    # -- jobs -----------------------------------------------------------------------------

    def job_details(self, slug: str, job_number: int | None) -> JobDetails:
        path = _job_path(slug, job_number, "/project/{slug}/job/{n}")
        return JobDetails.from_dict(self.json("GET", path))

    def job_tests(self, slug: str, job_number: int | None) -> list[TestResult]:
        """Test results stored with `store_test_results`; empty when none were (pitfalls B3)."""
        path = _job_path(slug, job_number, "/project/{slug}/{n}/tests")
        return [TestResult.from_dict(i) for i in self.paginate(path)]

    def job_artifacts(self, slug: str, job_number: int | None) -> list[Artifact]:
        path = _job_path(slug, job_number, "/project/{slug}/{n}/artifacts")
        return [Artifact.from_dict(i) for i in self.paginate(path)]

    def job_v1(self, slug: str, job_number: int | None) -> dict[str, Any]:
        """API v1.1's job, `GET {origin}/api/v1.1/project/{vcs}/{org}/{repo}/{n}`: its `steps[]`,
        whose `actions[]` (one per parallel node) carry `status`, `exit_code`, `index` and
        `output_url`. `vcs` is github, bitbucket or circleci (GitHub App and GitLab projects:
        `circleci/<org-id>/<project-id>`). Same host as API v2, so the token goes with it.
        The GET endpoints stay: only v1's trigger and rerun POSTs are removed (1 Feb 2027)."""
        vcs, _, rest = slug.partition("/")
        path = _job_path(f"{V1_VCS.get(vcs, vcs)}/{rest}", job_number, "/project/{slug}/{n}")
        data = self.json("GET", self.v1_url + path)
        if not isinstance(data, dict):
            raise CircleCIInvalidResponse(
                f"expected a job object from GET /api/v1.1{path}, got {type(data).__name__}",
                status=200,
                method="GET",
                path="/api/v1.1" + path,
            )
        return data

    def download_artifact(self, artifact: Artifact | str, destination: str | os.PathLike[str]) -> Path:
        """Stream an artifact to a file, following redirects; the file appears only once complete.

        Artifact URLs are not public and may redirect (pitfalls B4; circleci-docs PR 4222). The
        token goes with the request only to the API host and CIRCLECI_ARTIFACT_HOSTS, over https,
        and stops at the first redirect to another host (workers.circleci.token_scope); a URL elsewhere is
        still tried, without it.
        """
        url = artifact.url if isinstance(artifact, Artifact) else artifact
        if not url:
            raise ValueError("the artifact has no url")
        target = Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        response = self.request("GET", url, stream=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        finally:
            response.close()
        return target

    # -- contexts -------------------------------------------------------------------------

    def contexts(
        self,
        *,
        owner_id: str | None = None,
        owner_slug: str | None = None,
        owner_type: str | None = None,
    ) -> list[Context]:
        if bool(owner_id) == bool(owner_slug):
            raise ValueError("give exactly one of owner_id and owner_slug")
        params = {"owner-id": owner_id} if owner_id else {"owner-slug": owner_slug}
        if owner_type:
            params["owner-type"] = owner_type
        return [Context.from_dict(i) for i in self.paginate("/context", params=params)]

    def create_context(
        self,
        name: str,
        *,
        owner_id: str | None = None,
        owner_slug: str | None = None,
        owner_type: str = "organization",
    ) -> Context:
        if bool(owner_id) == bool(owner_slug):
            raise ValueError("give exactly one of owner_id and owner_slug")
        owner = {"id": owner_id} if owner_id else {"slug": owner_slug}
        body = {"name": name, "owner": {**owner, "type": owner_type}}
        return Context.from_dict(self.json("POST", "/context", json=body))

    def delete_context(self, context_id: str) -> str:
        return _message(self.json("DELETE", api_path("/context/{context_id}", context_id=context_id)))

    def context_env_vars(self, context_id: str) -> list[ContextEnvVar]:
        items = self.paginate(api_path("/context/{context_id}/environment-variable", context_id=context_id))
        return [ContextEnvVar.from_dict(i) for i in items]

    def set_context_env_var(self, context_id: str, name: str, value: str) -> ContextEnvVar:
        """Add or update (PUT is an upsert); the answer never includes the value."""
        path = api_path("/context/{context_id}/environment-variable/{name}", context_id=context_id, name=name)
        return ContextEnvVar.from_dict(self.json("PUT", path, json={"value": value}))

    def delete_context_env_var(self, context_id: str, name: str) -> str:
        path = api_path("/context/{context_id}/environment-variable/{name}", context_id=context_id, name=name)
        return _message(self.json("DELETE", path))

    # -- projects and their webhooks ------------------------------------------------------

    def project(self, slug: str) -> Project:
        return Project.from_dict(self.json("GET", api_path("/project/{slug}", slug=slug)))

    def webhooks(self, project_id: str) -> list[Webhook]:
        """The project's outbound webhooks, every page (their secrets come back masked)."""
        params = {"scope-id": project_id, "scope-type": "project"}
        return [Webhook.from_dict(i) for i in self.paginate("/webhook", params=params)]

    def webhook(self, webhook_id: str) -> Webhook:
        return Webhook.from_dict(self.json("GET", api_path("/webhook/{webhook_id}", webhook_id=webhook_id)))

    def create_webhook(
        self,
        project_id: str,
        *,
        name: str,
        url: str,
        events: Sequence[str],
        signing_secret: str,
        verify_tls: bool = True,
    ) -> Webhook:
        """`POST /webhook` scoped to a project; CircleCI delivers to https URLs only."""
        body = _webhook_body(name=name, url=url, events=events, signing_secret=signing_secret, verify_tls=verify_tls)
        body["scope"] = {"id": project_id, "type": "project"}
        return Webhook.from_dict(self.json("POST", "/webhook", json=body))

    def update_webhook(
        self,
        webhook_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        events: Sequence[str] | None = None,
        signing_secret: str | None = None,
        verify_tls: bool | None = None,
    ) -> Webhook:
        """`PUT /webhook/{id}` with the fields given; the others stay as they are."""
        body = _webhook_body(name=name, url=url, events=events, signing_secret=signing_secret, verify_tls=verify_tls)
        path = api_path("/webhook/{webhook_id}", webhook_id=webhook_id)
        return Webhook.from_dict(self.json("PUT", path, json=body))

    def delete_webhook(self, webhook_id: str) -> str:
        return _message(self.json("DELETE", api_path("/webhook/{webhook_id}", webhook_id=webhook_id)))

    # -- project environment variables and checkout keys ----------------------------------

    def project_env_vars(self, slug: str) -> list[ProjectEnvVar]:
        path = api_path("/project/{slug}/envvar", slug=slug)
        return [ProjectEnvVar.from_dict(i) for i in self.paginate(path)]

    def create_project_env_var(self, slug: str, name: str, value: str) -> ProjectEnvVar:
        body = {"name": name, "value": value}
        path = api_path("/project/{slug}/envvar", slug=slug)
        return ProjectEnvVar.from_dict(self.json("POST", path, json=body))

    def delete_project_env_var(self, slug: str, name: str) -> str:
        return _message(self.json("DELETE", api_path("/project/{slug}/envvar/{name}", slug=slug, name=name)))

    def checkout_keys(self, slug: str, *, digest: str | None = None) -> list[CheckoutKey]:
        params = {"digest": digest} if digest else None
        items = self.paginate(api_path("/project/{slug}/checkout-key", slug=slug), params=params)
        return [CheckoutKey.from_dict(i) for i in items]

    # -- insights -------------------------------------------------------------------------

    def flaky_tests(self, slug: str) -> list[FlakyTest]:
        """Not supported for circleci/<org> slugs (GitLab, GitHub App) per the insights docs."""
        path = api_path("/insights/{slug}/flaky-tests", slug=slug)
        data = self.json("GET", path)
        # the spec says kebab-case, the live API answers snake_case (mcp-server-circleci PR #23): both
        items = data.get("flaky-tests", data.get("flaky_tests")) if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise CircleCIInvalidResponse(
                f"expected {{'flaky-tests': [...]}} from GET {path}", status=200, method="GET", path=path
            )
        return [FlakyTest.from_dict(i) for i in items if isinstance(i, dict)]
