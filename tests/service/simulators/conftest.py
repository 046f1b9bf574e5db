"""Fixtures for the simulator's contract test: every client operation against it, recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from config.errors import CircleCIForbidden, CircleCINotFound
from service.simulators.circleci import create_simulator
from tests.conftest import FIXTURES
from workers.circleci.client import CircleCIClient

SLUG = "gh/circleci/webhook-service"
DENIED = "gh/circleci/locked"  # its webhooks answer 403
# A GitHub OAuth tag build: the webhook names no branch, tag or commit; the API answers them.
TAG_BUILD = json.loads((FIXTURES / "workflow-completed.tag.github-oauth.derived.json").read_text())
TAG_BUILD_VCS = {"tag": "v1.4.0", "commit": {"subject": "Release 1.4.0", "body": ""}}


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    request_body: Any
    response_body: Any


def _exercise(client: CircleCIClient, tmp_path: Path) -> None:
    """Call every operation the client has, the way the workers and the CLI do."""
    payload = json.loads((FIXTURES / "workflow-completed.failed.github-oauth.derived.json").read_text())
    workflow_id, pipeline_id = payload["workflow"]["id"], payload["pipeline"]["id"]
    org_id = payload["organization"]["id"]
    client.me()
    client.organization_slugs()
    client.pipeline(pipeline_id)
    client.pipeline(TAG_BUILD["pipeline"]["id"])
    list(client.pipelines(SLUG, branch="feature/new-endpoint"))
    client.pipeline_workflows(pipeline_id)
    client.workflow(workflow_id)
    jobs = client.workflow_jobs(workflow_id)
    for job in jobs:
        if job.is_approval:
            continue
        client.job_details(payload["project"]["slug"], job.job_number)
        client.job_tests(SLUG, job.job_number)
        for artifact in client.job_artifacts(SLUG, job.job_number):
            client.download_artifact(artifact, tmp_path / str(job.job_number) / artifact.path)
    client.trigger_pipeline(SLUG, branch="main", parameters={"deploy": True, "count": 2})
    client.trigger_pipeline(SLUG, tag="v1.0.0")
    client.run_pipeline(
        SLUG,
        definition_id="2338d0ae-5541-4bbf-88a2-55e9f7281f80",
        config={"branch": "main"},
        checkout={"branch": "main"},
        parameters={"deploy": True},
    )
    rerun = client.rerun_workflow(workflow_id, from_failed=True)
    client.rerun_workflow(workflow_id, jobs=[jobs[0].id], enable_ssh=True)
    client.cancel_workflow(rerun)
    approval = next(j for j in jobs if j.is_approval)
    client.approve_job(workflow_id, approval.approval_request_id)
    [org_global] = client.contexts(owner_id=org_id)
    client.context_env_vars(org_global.id)
    context = client.create_context("deploy", owner_id=org_id)
    client.set_context_env_var(context.id, "TOKEN", "value")
    client.delete_context_env_var(context.id, "TOKEN")
    client.delete_context(context.id)
    client.project_env_vars(SLUG)
    client.create_project_env_var(SLUG, "NEW_VAR", "value")
    client.delete_project_env_var(SLUG, "NEW_VAR")
    client.checkout_keys(SLUG)
    client.flaky_tests(SLUG)
    project = client.project(SLUG)
    assert {p.project_slug for p in client.org_pipelines("gh/circleci")} == {SLUG}
    events = ["workflow-completed", "job-completed"]
    hooks = [
        client.create_webhook(
            project.id, name=f"hook {n}", url=f"https://hooks.test/{n}", events=events, signing_secret="s"
        )
        for n in range(2)
    ]
    assert [h.id for h in client.webhooks(project.id)] == [h.id for h in hooks]  # page size 1: two pages
    client.webhook(hooks[0].id)
    client.update_webhook(hooks[0].id, signing_secret="rotated", verify_tls=False, events=["job-completed"])
    client.delete_webhook(hooks[1].id)
    with pytest.raises(CircleCIForbidden):
        client.webhooks(client.project(DENIED).id)
    with pytest.raises(CircleCINotFound):
        client.job_details(SLUG, 424242)
    with pytest.raises(CircleCINotFound):
        client.workflow("00000000-0000-4000-8000-000000000000")


@pytest.fixture(scope="module")
def exchanges(tmp_path_factory: pytest.TempPathFactory) -> list[Exchange]:
    """What the client sent and the simulator answered, for every operation."""
    app = create_simulator(page_size=1, token="t")
    app.state.simulator.dataset.deny_webhooks(DENIED)
    app.state.simulator.dataset.add_workflow_from_webhook(TAG_BUILD, vcs=TAG_BUILD_VCS)
    recorded: list[Exchange] = []

    def record(response: httpx.Response) -> None:
        response.read()
        request = response.request
        if request.url.path.startswith("/_sim"):  # artifact downloads: not API operations
            return
        request.read()
        content_type = response.headers.get("content-type", "")
        recorded.append(
            Exchange(
                method=request.method,
                path=request.url.path.removeprefix("/api/v2"),
                status=response.status_code,
                request_body=json.loads(request.content) if request.content else None,
                response_body=response.json() if content_type.startswith("application/json") else None,
            )
        )

    # https: the artifact URLs the simulator hands out are absolute, on its own host, and the
    # token goes to an absolute URL only over https (or http on loopback).
    with TestClient(app, base_url="https://sim.test/api/v2") as http:
        http.event_hooks = {"request": [], "response": [record]}
        client = CircleCIClient(http_client=http, token="t", max_retries=0)
        _exercise(client, tmp_path_factory.mktemp("artifacts"))
    return recorded
