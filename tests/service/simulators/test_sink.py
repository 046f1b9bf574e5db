"""The chat sink records what it is sent and fails on demand, per path."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.testclient import TestClient

from service.simulators.sink import Received, SinkFault, create_sink, describe
from tests.server import running


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_sink())


def test_records_path_headers_and_json_body(client: TestClient) -> None:
    answer = client.post("/slack/ops", json={"text": "hi"}, headers={"x-delivery": "d1"})
    assert (answer.status_code, answer.text) == (200, "ok")
    [received] = client.get("/_sink/requests").json()["requests"]
    assert received["path"] == "/slack/ops"
    assert received["body"] == {"text": "hi"}
    assert received["headers"]["x-delivery"] == "d1"
    assert received["status"] == 200


def test_keeps_a_body_that_is_not_json_as_text(client: TestClient) -> None:
    client.post("/hook", content=b"plain words")
    assert client.app.state.sink.requests()[0].body == "plain words"


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        ({"kind": "server_error"}, 500, None),
        ({"kind": "rate_limited", "retry_after": 7}, 429, "7"),
        ({"kind": "bad_request"}, 400, None),
        ({"status": 503}, 503, None),
    ],
)
def test_a_fault_answers_its_status(client: TestClient, fault: dict, status: int, retry_after: str | None) -> None:
    client.post("/_sink/faults", json={"path": "/slack/*", **fault})
    answer = client.post("/slack/ops", json={})
    assert answer.status_code == status
    assert answer.headers.get("retry-after") == retry_after
    assert client.post("/slack/ops", json={}).status_code == 200  # times defaults to 1


def test_faults_match_their_path_only(client: TestClient) -> None:
    client.post("/_sink/faults", json={"path": "/teams/*", "status": 500})
    assert client.post("/slack/ops", json={}).status_code == 200
    assert client.post("/teams/ops", json={}).status_code == 500


def test_fails_n_times_then_succeeds(client: TestClient) -> None:
    client.app.state.sink.add_fault(path="/hook", status=500, times=3)
    statuses = [client.post("/hook", json={}).status_code for _ in range(4)]
    assert statuses == [500, 500, 500, 200]
    assert len(client.app.state.sink.delivered("/hook")) == 1


def test_down_fails_every_request_for_its_duration(client: TestClient) -> None:
    sink = client.app.state.sink
    down = sink.add_fault(kind="down", path="/hook", duration=3600)
    assert [client.post("/hook", json={}).status_code for _ in range(3)] == [503, 503, 503]
    down.duration = 0  # the outage is over
    down.started -= 1
    assert client.post("/hook", json={}).status_code == 200


def test_slow_answers_beyond_the_client_timeout() -> None:
    app = create_sink()
    app.state.sink.add_fault(kind="slow", path="/hook", delay=1.0)
    with running(app) as base_url, pytest.raises(httpx.TimeoutException):
        httpx.post(f"{base_url}/hook", json={}, timeout=0.1)


def test_reset_forgets_requests_and_faults(client: TestClient) -> None:
    client.post("/_sink/faults", json={"status": 500, "times": None})
    client.post("/hook", json={})
    client.post("/_sink/reset")
    assert client.get("/_sink/faults").json() == {"faults": []}
    assert client.get("/_sink/requests").json()["total"] == 0
    assert client.post("/hook", json={}).status_code == 200


def test_delete_faults_ends_them(client: TestClient) -> None:
    client.post("/_sink/faults", json=[{"status": 500, "times": None}, {"status": 429}])
    client.delete("/_sink/faults")
    assert client.post("/hook", json={}).status_code == 200


def test_requests_filter_by_path(client: TestClient) -> None:
    client.post("/a", json={})
    client.post("/b", json={})
    assert [r["path"] for r in client.get("/_sink/requests", params={"path": "/b"}).json()["requests"]] == ["/b"]


def test_wait_answers_the_nth_arrival_of_a_path_at_once_when_it_is_there(client: TestClient) -> None:
    for path in ("/a", "/b", "/a"):
        client.post(path, json={})
    second = client.app.state.sink.requests("/a")[1]
    assert client.get("/_sink/wait", params={"path": "/a", "count": 2}).json() == {"count": 2, "at": second.at}


def test_wait_says_null_when_the_count_is_not_reached_in_time(client: TestClient) -> None:
    client.post("/a", json={})
    answer = client.get("/_sink/wait", params={"path": "/a", "count": 2, "timeout": 0.05})
    assert answer.json() == {"count": None, "at": None}
    assert client.app.state.sink.waiters == []


def test_wait_returns_when_the_awaited_message_arrives() -> None:
    app = create_sink()
    with running(app) as base_url, httpx.Client(base_url=base_url) as http:
        http.post("/a", json={})
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(http.get, "/_sink/wait", params={"path": "/a", "count": 2, "timeout": 10})
            time.sleep(0.1)
            assert not waiting.done()
            http.post("/a", json={})
            answer = waiting.result(timeout=5).json()
    assert answer == {"count": 2, "at": app.state.sink.requests("/a")[1].at}


def test_wait_refuses_a_count_that_is_not_a_number(client: TestClient) -> None:
    assert client.get("/_sink/wait", params={"count": "many"}).status_code == 400


def test_from_dict_takes_presets_and_overrides() -> None:
    fault = SinkFault.from_dict({"kind": "rate_limited", "retry_after": 3, "times": 2})
    assert (fault.status, fault.retry_after, fault.times) == (429, 3, 2)


def test_describe_prints_slack_text_and_blocks() -> None:
    body = {"text": "Build failed", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*main* broke"}}]}
    printed = describe(Received("POST", "/slack/ops", {}, body, 200, 0.0))
    assert "POST /slack/ops -> 200" in printed
    assert "Build failed" in printed and "*main* broke" in printed


def test_wait_true_answers_the_message_with_an_id_that_can_be_patched(client: TestClient) -> None:
    first = client.post("/discord/hook?wait=true", json={"content": "x"}).json()
    second = client.post("/discord/hook?wait=true", json={"content": "y"}).json()
    assert first["id"] != second["id"] and first["id"].isdigit()
    assert client.patch(f"/discord/hook/messages/{first['id']}", json={"content": "z"}).status_code == 200
    assert [r.method for r in client.app.state.sink.requests()] == ["POST", "POST", "PATCH"]
