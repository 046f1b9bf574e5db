"""The simulator's controls: faults by path and count, call counts, reset, token check."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from service.simulators.circleci import create_simulator
from service.simulators.circleci_data import Dataset

AUTH = {"Circle-Token": "t"}


@pytest.fixture
def http():
    with TestClient(create_simulator(Dataset.example(), token="t")) as client:
        yield client


def test_a_fault_answers_times_calls_after_letting_after_through(http):
    fault = {"path": "/me", "status": 500, "times": 2, "after": 1}
    http.post("/_sim/faults", json=fault).raise_for_status()

    statuses = [http.get("/me", headers=AUTH).status_code for _ in range(5)]

    assert statuses == [200, 500, 500, 200, 200]


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "body", "retry_after"),
    [
        ({"kind": "rate_limited_text"}, 429, "text/plain", "Rate limited.", "1"),
        (
            {"kind": "rate_limited", "retry_after": 30},
            429,
            "application/json",
            '{"message":"Rate limit exceeded."}',
            "30",
        ),
        ({"kind": "server_error"}, 500, "application/json", '{"message":"Internal server error."}', None),
        ({"kind": "unauthorized"}, 401, "application/json", '{"message":"Invalid token provided."}', None),
        ({"kind": "forbidden"}, 403, "application/json", '{"message":"Permission denied."}', None),
    ],
)
def test_fault_kinds_answer_as_circleci_does(http, fault, status, content_type, body, retry_after):
    http.post("/_sim/faults", json=fault | {"path": "/workflow/*"}).raise_for_status()

    response = http.get("/api/v2/workflow/anything", headers=AUTH)

    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    assert response.text == body
    assert response.headers.get("retry-after") == retry_after


def test_faults_match_a_method_and_a_spec_template(http):
    http.post("/_sim/faults", json={"path": "/project/{project-slug}/envvar", "method": "POST", "status": 500})

    listed = http.get("/project/gh/circleci/webhook-service/envvar", headers=AUTH)
    created = http.post("/project/gh/circleci/webhook-service/envvar", headers=AUTH, json={"name": "A", "value": "b"})

    assert (listed.status_code, created.status_code) == (200, 500)


def test_calls_are_counted_per_method_and_template_and_reset_forgets_them(http):
    http.get("/me", headers=AUTH)
    http.get("/api/v2/workflow/w-1", headers=AUTH)
    http.get("/workflow/w-2", headers=AUTH)
    counted = http.get("/_sim/calls").json()
    http.post("/_sim/faults", json={"path": "*"})

    http.post("/_sim/reset")

    assert counted == {"calls": {"GET /me": 1, "GET /workflow/{id}": 2}, "total": 3}
    assert http.get("/_sim/calls").json() == {"calls": {}, "total": 0}
    assert http.get("/_sim/faults").json() == {"faults": []}


def test_call_times_say_when_each_operation_was_last_called_on_the_machines_monotonic_clock(http):
    before = time.monotonic()
    http.get("/workflow/w-1", headers=AUTH)
    http.get("/workflow/w-2", headers=AUTH)
    after = time.monotonic()

    at = http.get("/_sim/call-times").json()["at"]

    assert list(at) == ["GET /workflow/{id}"]
    assert before <= at["GET /workflow/{id}"] <= after


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "You must log in first"),
        ({"Circle-Token": "wrong"}, 401, "Invalid token provided."),
        ({"Authorization": "Bearer t"}, 200, None),
    ],
)
def test_the_token_is_checked(http, headers, status, message):
    response = http.get("/me", headers=headers)

    assert response.status_code == status
    assert message is None or response.json() == {"message": message}


def test_a_slug_escaped_into_one_segment_is_a_404_on_pipeline_run(http):
    response = http.post("/project/gh%2Fcircleci%2Fwebhook-service/pipeline/run", headers=AUTH, json={})

    assert response.status_code == 404


def test_pages_carry_opaque_tokens_until_the_last(http):
    with TestClient(create_simulator(Dataset.example(), token="t", page_size=1)) as paged:
        workflow = "0a7c2d3e-4f5b-4c6d-8e9f-a0b1c2d3e4f5"
        names, token = [], ""
        while token is not None:
            page = paged.get(
                f"/workflow/{workflow}/job", headers=AUTH, params={"page-token": token} if token else None
            ).json()
            names += [j["name"] for j in page["items"]]
            token = page["next_page_token"]
        bad = paged.get(f"/workflow/{workflow}/job", headers=AUTH, params={"page-token": "garbage"})

    assert names == ["build", "test", "hold-for-deploy"]
    assert bad.status_code == 400


HOOK = {
    "name": "ours",
    "events": ["workflow-completed", "job-completed"],
    "url": "https://ci-events.example/webhooks/circleci",
    "verify-tls": True,
    "signing-secret": "a-long-signing-secret",
}


def _project_id(http, slug="gh/circleci/webhook-service"):
    return http.get(f"/project/{slug}", headers=AUTH).json()["id"]


def test_webhooks_answer_with_the_secret_masked(http):
    scope = {"id": _project_id(http), "type": "project"}
    created = http.post("/webhook", headers=AUTH, json=HOOK | {"scope": scope})
    listed = http.get("/webhook", headers=AUTH, params={"scope-id": scope["id"], "scope-type": "project"})

    assert created.status_code == 201
    assert created.json()["signing-secret"] == "xxxxcret"
    assert [w["signing-secret"] for w in listed.json()["items"]] == ["xxxxcret"]
    assert "a-long-signing-secret" not in created.text + listed.text


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"url": "http://ci-events.example/hook"}, "url must be an https URL"),
        ({"events": ["ping"]}, "events must be a non-empty list"),
        ({"verify-tls": "yes"}, "verify-tls must be true or false"),
        ({"scope": {"id": "x", "type": "organization"}}, "scope must be"),
        ({"name": None}, "name must be a non-empty string"),
    ],
)
def test_a_webhook_body_out_of_the_documented_shape_is_a_400(http, change, says):
    body = HOOK | {"scope": {"id": _project_id(http), "type": "project"}} | change

    response = http.post("/webhook", headers=AUTH, json=body)

    assert response.status_code == 400
    assert says in response.json()["message"]


def test_webhooks_of_an_unknown_project_are_404_and_of_a_denied_one_403():
    data = Dataset.example()
    data.deny_webhooks("gh/circleci/locked")
    with TestClient(create_simulator(data, token="t")) as http:
        denied = {"scope-id": _project_id(http, "gh/circleci/locked"), "scope-type": "project"}
        unknown = {"scope-id": "00000000-0000-4000-8000-000000000000", "scope-type": "project"}

        assert http.get("/webhook", headers=AUTH, params=denied).status_code == 403
        assert (
            http.post(
                "/webhook", headers=AUTH, json=HOOK | {"scope": {"id": denied["scope-id"], "type": "project"}}
            ).status_code
            == 403
        )
        assert http.get("/webhook", headers=AUTH, params=unknown).status_code == 404
        assert http.get("/project/gh/circleci/nowhere", headers=AUTH).status_code == 404
        assert http.delete(f"/webhook/{unknown['scope-id']}", headers=AUTH).status_code == 404


def _waiting_workflow(http) -> tuple[str, dict]:
    """The example's failed workflow id and its approval job (on hold)."""
    sim = http.app.state.simulator
    workflow_id = next(iter(sim.dataset.workflows))
    approval = next(j for j in sim.dataset.jobs[workflow_id] if j["type"] == "approval")
    return workflow_id, approval


def test_approving_an_on_hold_job_succeeds_once_then_answers_400(http):
    workflow_id, approval = _waiting_workflow(http)
    url = f"/api/v2/workflow/{workflow_id}/approve/{approval['approval_request_id']}"

    first, second = http.post(url, headers=AUTH), http.post(url, headers=AUTH)

    assert (first.status_code, second.status_code) == (202, 400)
    assert second.json() == {"message": "Job is not on hold."}
    state = http.get(f"/_sim/workflows/{workflow_id}").json()
    assert next(j for j in state["jobs"] if j["type"] == "approval")["status"] == "success"


def test_canceling_an_on_hold_workflow_cancels_its_waiting_approval(http):
    sim = http.app.state.simulator
    workflow_id, _ = _waiting_workflow(http)
    sim.dataset.workflows[workflow_id]["status"] = "on_hold"

    assert http.post(f"/api/v2/workflow/{workflow_id}/cancel", headers=AUTH).status_code == 202

    state = http.get(f"/_sim/workflows/{workflow_id}").json()
    assert state["workflow"]["status"] == "canceled"
    assert next(j for j in state["jobs"] if j["type"] == "approval")["status"] == "canceled"


def test_a_rerun_from_failed_starts_a_workflow_in_the_same_pipeline_that_later_completes():
    app = create_simulator(Dataset.example(), token="t", completion_seconds=0.05)
    with TestClient(app) as http:
        workflow_id, _ = _waiting_workflow(http)
        answer = http.post(f"/api/v2/workflow/{workflow_id}/rerun", headers=AUTH, json={"from_failed": True})
        assert answer.status_code == 202
        new_id = answer.json()["workflow_id"]
        new = http.get(f"/_sim/workflows/{new_id}").json()["workflow"]
        old = http.get(f"/_sim/workflows/{workflow_id}").json()["workflow"]
        assert new["pipeline_id"] == old["pipeline_id"] and new["status"] == "running"
        deadline = time.monotonic() + 30
        while http.get(f"/_sim/workflows/{new_id}").json()["workflow"]["status"] == "running":
            assert time.monotonic() < deadline, "the rerun never completed"
            time.sleep(0.02)
        assert http.get(f"/_sim/workflows/{new_id}").json()["workflow"]["status"] == "success"


def test_a_rerun_from_failed_of_a_workflow_with_nothing_failed_answers_400(http):
    sim = http.app.state.simulator
    workflow_id, _ = _waiting_workflow(http)
    sim.dataset.workflows[workflow_id]["status"] = "success"

    answer = http.post(f"/api/v2/workflow/{workflow_id}/rerun", headers=AUTH, json={"from_failed": True})

    assert (answer.status_code, answer.json()) == (400, {"message": "Workflow has no failed jobs to rerun."})
