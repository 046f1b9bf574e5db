"""The simulator's API v1.1 job, its storage route (which refuses a CircleCI token) and Insights' casings."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from service.simulators.circleci import create_simulator
from tests.conftest import FIXTURES

PAYLOAD = json.loads((FIXTURES / "workflow-completed.failed.github-oauth.derived.json").read_text())
TOKEN = {"Circle-Token": "sim-token"}
V1 = "/api/v1.1/project/github/circleci/webhook-service/{n}"


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(create_simulator()) as client:
        yield client


def failed_job(http: TestClient) -> dict:
    jobs = [{"name": "build", "status": "failed", "number": 4242}]
    http.post("/_sim/workflows", json={"payload": PAYLOAD, "jobs": jobs})
    answer = http.get(V1.format(n=4242), headers=TOKEN)
    assert answer.status_code == 200
    return answer.json()


def test_a_v1_1_job_has_steps_whose_actions_carry_output_urls(http) -> None:
    job = failed_job(http)
    assert [s["name"] for s in job["steps"]] == ["Spin up environment", "Checkout code", "postgres", "Run build"]
    postgres, run = job["steps"][2]["actions"][0], job["steps"][3]["actions"][0]
    assert (postgres["background"], postgres["status"]) == (True, "canceled")
    assert (run["status"], run["exit_code"], run["index"], run["failed"]) == ("failed", 1, 0, True)
    assert "/_sim/storage/output/" in run["output_url"] and "X-Amz-Signature=" in run["output_url"]


def test_v1_1_needs_the_token_and_knows_the_job(http) -> None:
    failed_job(http)
    assert http.get(V1.format(n=4242)).status_code == 401
    assert http.get(V1.format(n=1), headers=TOKEN).json() == {"message": "Build not found"}


def test_the_storage_route_serves_json_messages_with_ansi_and_refuses_a_token(http) -> None:
    url = failed_job(http)["steps"][3]["actions"][0]["output_url"]
    messages = http.get(url).json()
    assert "\x1b[31m" in messages[0]["message"] and "\r\n" in messages[0]["message"]
    refused = http.get(url, headers=TOKEN)
    assert refused.status_code == 403 and "CircleCI token" in refused.text
    assert http.app.state.simulator.tokens_at_storage == 1


def test_the_storage_route_honours_a_suffix_range(http) -> None:
    url = failed_job(http)["steps"][3]["actions"][0]["output_url"]
    whole = http.get(url).content
    end = http.get(url, headers={"Range": "bytes=-10"})
    assert end.status_code == 206 and end.content == whole[-10:]
    assert end.headers["content-range"] == f"bytes {len(whole) - 10}-{len(whole) - 1}/{len(whole)}"


@pytest.mark.parametrize(("casing", "key"), [("kebab", "flaky-tests"), ("snake", "flaky_tests")])
def test_insights_answers_in_either_casing(http, casing, key) -> None:
    added = {
        "project": "gh/circleci/webhook-service",
        "tests": [{"test_name": "t", "times_flaked": 3}],
        "casing": casing,
    }
    assert http.post("/_sim/flaky-tests", json=added).status_code == 201
    answer = http.get("/insights/gh/circleci/webhook-service/flaky-tests", headers=TOKEN).json()
    item = answer[key][-1]
    assert item["test_name" if casing == "snake" else "test-name"] == "t"
