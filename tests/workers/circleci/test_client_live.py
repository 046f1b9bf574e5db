"""CircleCIClient against the simulator over real HTTP: every operation, pages, faults."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from config.errors import CircleCINotFound, CircleCIServerError, CircleCITimeout, CircleCIUnauthorized
from tests.workers.conftest import FIXTURES
from workers.circleci.client import CircleCIClient

# The example dataset serves this payload (service.simulators.circleci_data.Dataset.example).
PAYLOAD = json.loads((FIXTURES / "workflow-completed.failed.github-oauth.derived.json").read_text())
WEBHOOK_SLUG = PAYLOAD["project"]["slug"]
API_SLUG = "gh/circleci/webhook-service"
WORKFLOW_ID = PAYLOAD["workflow"]["id"]
PIPELINE_ID = PAYLOAD["pipeline"]["id"]
ORG_ID = PAYLOAD["organization"]["id"]


def calls(base_url: str) -> dict[str, int]:
    return httpx.get(f"{base_url}/_sim/calls").json()["calls"]


def test_a_workflow_its_jobs_details_tests_and_artifacts_are_served(live_simulator, tmp_path: Path):
    _, _, client = live_simulator

    workflow = client.workflow(WORKFLOW_ID)
    jobs = client.workflow_jobs(WORKFLOW_ID)
    build_jobs = [j for j in jobs if not j.is_approval]
    test_job = next(j for j in build_jobs if j.name == "test")
    details = client.job_details(WEBHOOK_SLUG, test_job.job_number)
    tests = client.job_tests(WEBHOOK_SLUG, test_job.job_number)
    artifacts = client.job_artifacts(API_SLUG, test_job.job_number)
    downloaded = client.download_artifact(artifacts[0], tmp_path / "junit.xml")

    assert (workflow.status, workflow.project_slug, workflow.pipeline_id) == ("failed", API_SLUG, PIPELINE_ID)
    assert [(j.name, j.type) for j in jobs] == [
        ("build", "build"),
        ("test", "build"),
        ("hold-for-deploy", "approval"),
    ]
    assert (details.number, details.status, details.latest_workflow["id"]) == (
        test_job.job_number,
        "failed",
        WORKFLOW_ID,
    )
    assert [t.failed for t in tests] == [False, True]
    assert [a.path for a in artifacts] == ["test-results/junit.xml", "coverage/index.html"]
    assert downloaded.read_text() == f"artifact test-results/junit.xml of job {test_job.job_number}\n"


def test_pipelines_users_contexts_variables_keys_and_flaky_tests_are_served(live_simulator):
    _, _, client = live_simulator

    assert client.me().login == "octocat"
    assert client.pipeline(PIPELINE_ID).vcs["branch"] == "feature/new-endpoint"
    assert [p.id for p in client.pipelines(API_SLUG)] == [PIPELINE_ID]
    assert [w.id for w in client.pipeline_workflows(PIPELINE_ID)] == [WORKFLOW_ID]
    [context] = client.contexts(owner_id=ORG_ID)
    assert [v.variable for v in client.context_env_vars(context.id)] == ["API_KEY", "NPM_TOKEN"]
    assert {v.name: v.value for v in client.project_env_vars(API_SLUG)} == {
        "AWS_REGION": "xxxxst-1",
        "SENTRY_DSN": "xxxx1234",
    }
    assert [k.type for k in client.checkout_keys(API_SLUG)] == ["deploy-key"]
    assert [f.test_name for f in client.flaky_tests(API_SLUG)] == ["GET /health returns 200"]


def test_write_operations_change_what_is_served(live_simulator):
    sim, _, client = live_simulator
    approval = next(j for j in client.workflow_jobs(WORKFLOW_ID) if j.is_approval)

    created = client.trigger_pipeline(API_SLUG, branch="main", parameters={"deploy": True})
    ran = client.run_pipeline(API_SLUG, config={"branch": "main"}, checkout={"branch": "main"})
    sim.dataset.run_skip_message = "Pipeline skipped: [ci skip]"
    skipped = client.run_pipeline(API_SLUG)
    new_workflow = client.rerun_workflow(WORKFLOW_ID, from_failed=True)
    client.approve_job(WORKFLOW_ID, approval.approval_request_id)
    client.cancel_workflow(new_workflow)
    context = client.create_context("deploy", owner_id=ORG_ID)
    client.set_context_env_var(context.id, "TOKEN", "s3cret")
    client.delete_context_env_var(context.id, "TOKEN")
    client.create_project_env_var(API_SLUG, "NEW", "value")
    client.delete_project_env_var(API_SLUG, "NEW")

    assert [p.number for p in client.pipelines(API_SLUG)] == [133, 132, 131]
    assert (created.number, ran.number, skipped.skipped) == (132, 133, True)
    assert client.workflow(new_workflow).status == "canceled"
    assert next(j for j in client.workflow_jobs(WORKFLOW_ID) if j.is_approval).status == "success"
    assert client.context_env_vars(context.id) == []
    assert client.delete_context(context.id) == "Context deleted."
    assert [c.name for c in client.contexts(owner_id=ORG_ID)] == ["org-global"]
    assert "NEW" not in {v.name for v in client.project_env_vars(API_SLUG)}


def test_pagination_crosses_pages_and_each_page_is_one_call(live_simulator):
    _, base_url, client = live_simulator

    jobs = client.workflow_jobs(WORKFLOW_ID)

    assert len(jobs) == 3
    assert calls(base_url) == {"GET /workflow/{id}/job": 2}


def test_a_plain_text_429_then_success_is_retried_after_retry_after(live_simulator, clock):
    _, base_url, client = live_simulator
    fault = {"kind": "rate_limited_text", "path": "/workflow/*/job", "retry_after": 3}
    httpx.post(f"{base_url}/_sim/faults", json=fault).raise_for_status()

    jobs = client.workflow_jobs(WORKFLOW_ID)

    assert len(jobs) == 3
    assert calls(base_url) == {"GET /workflow/{id}/job": 3}
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 3


def test_a_server_error_is_retried_for_a_get_but_not_for_a_trigger(live_simulator):
    sim, base_url, client = live_simulator
    sim.add_fault(path="/workflow/*", method="GET", status=500, times=2)
    sim.add_fault(path="/project/*/pipeline", method="POST", status=500, times=1)

    assert client.workflow(WORKFLOW_ID).id == WORKFLOW_ID
    with pytest.raises(CircleCIServerError):
        client.trigger_pipeline(API_SLUG, branch="main")

    assert calls(base_url) == {"GET /workflow/{id}": 3, "POST /project/{project-slug}/pipeline": 1}


def test_a_slow_answer_raises_a_timeout(live_simulator):
    sim, base_url, _ = live_simulator
    sim.add_fault(kind="slow", path="/me", delay=0.5)
    client = CircleCIClient(base_url=base_url, token="sim-token-for-tests", timeout=0.1, max_retries=0)

    with client, pytest.raises(CircleCITimeout):
        client.me()


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_a_missing_or_wrong_token_is_refused(live_simulator, token):
    _, base_url, _ = live_simulator
    client = CircleCIClient(base_url=base_url, token=token, max_retries=0)

    with client, pytest.raises(CircleCIUnauthorized, match="personal API token"):
        client.workflow(WORKFLOW_ID)


def test_a_webhook_payload_posted_to_the_control_endpoint_becomes_servable(live_simulator):
    _, base_url, client = live_simulator
    payload = json.loads((FIXTURES / "workflow-completed.canceled.bitbucket-cloud.derived.json").read_text())
    jobs = [{"name": "lint/python", "status": "success"}, {"name": "deploy", "status": "canceled"}]

    made = httpx.post(f"{base_url}/_sim/workflows", json={"payload": payload, "jobs": jobs}).json()
    served = client.workflow_jobs(payload["workflow"]["id"])

    assert made["project_slug"] == "bb/acme/payments-api"
    assert [(j.name, j.status) for j in served] == [("lint/python", "success"), ("deploy", "canceled")]
    assert client.job_details(payload["project"]["slug"], served[0].job_number).name == "lint/python"
    with pytest.raises(CircleCINotFound, match="Job not found"):
        client.job_details(payload["project"]["slug"], 999999)
