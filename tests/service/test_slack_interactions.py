"""POST /slack/interactions: verified before parsing, one queued job per request, refusals in plain words."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import fakeredis
import pytest
from redis.asyncio import Redis
from rq.job import Job
from starlette.testclient import TestClient

from config.settings import Settings
from service.app import create_app
from service.simulators.sink import Sink, create_sink
from service.slack_interactions import sign
from tests.clock import FakeClock
from tests.conftest import SECRET
from tests.server import running

SLACK_SECRET, OLD_SECRET = "slack-signing-secret-new", "slack-signing-secret-old"
TEAM = "T0ACME"
NOW = 1_800_000_000


def settings(**extra: str) -> Settings:
    env = {"CIRCLECI_WEBHOOK_SECRETS": SECRET, "SLACK_SIGNING_SECRET": f"{SLACK_SECRET}, {OLD_SECRET}",
           "SLACK_TEAM_ID": TEAM, "MAX_BODY_BYTES": "20000"}  # fmt: skip
    return Settings.from_environ(env | extra)


def payload(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0ADA", "team_id": TEAM},
        "team": {"id": TEAM},
        "channel": {"id": "C0CI"},
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "response_url": "https://hooks.slack.test/actions/T0ACME/1/xyz",
        "actions": [{"action_id": "circleci_events.approve", "value": "event-1", "action_ts": "1700000001.1"}],
    }
    return data | changes


def form(data: Any) -> bytes:
    return urlencode({"payload": json.dumps(data)}).encode()


def signed(body: bytes, *, secret: str = SLACK_SECRET, timestamp: int = NOW) -> dict[str, Any]:
    headers = {"content-type": "application/x-www-form-urlencoded", **sign(body, secret, timestamp)}
    return {"content": body, "headers": headers}


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> Iterator[TestClient]:
    app = create_app(settings(), redis=fakeredis.FakeAsyncRedis(server=server), clock=FakeClock(NOW))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def queued(server: fakeredis.FakeServer) -> list[dict[str, Any]]:
    """The clicks waiting in the events queue, front first."""
    redis = fakeredis.FakeRedis(server=server)
    clicks = []
    for job_id in redis.lrange("rq:queue:events", 0, -1):
        data = json.loads(redis.hget(f"{Job.redis_job_namespace_prefix}{job_id.decode()}", "data"))
        assert data[0] == "workers.actions.act"
        clicks.append(data[2][0])
    return clicks


@pytest.mark.parametrize("secret", [SLACK_SECRET, OLD_SECRET])
def test_a_signed_click_is_queued_for_the_worker_and_answered_200(client, server, secret) -> None:
    answer = client.post("/slack/interactions", **signed(form(payload()), secret=secret))
    assert (answer.status_code, answer.content) == (200, b"")
    [click] = queued(server)
    assert {k: click[k] for k in ("action", "button", "user_id", "team_id", "channel_id", "message_ts")} == {
        "action": "approve", "button": "event-1", "user_id": "U0ADA", "team_id": TEAM, "channel_id": "C0CI",
        "message_ts": "1700000000.000100",
    }  # fmt: skip
    assert click["response_url"].startswith("https://hooks.slack.test/")


def test_a_replayed_request_is_answered_200_and_queued_once(client, server) -> None:
    request = signed(form(payload()))
    assert [client.post("/slack/interactions", **request).status_code for _ in range(3)] == [200, 200, 200]
    assert len(queued(server)) == 1


def _headers_without(name: str) -> dict[str, Any]:
    request = signed(form(payload()))
    request["headers"].pop(name)
    return request


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "message"),
    [
        (_headers_without("x-slack-signature"), 401, "signature_invalid", "missing x-slack-signature"),
        (_headers_without("x-slack-request-timestamp"), 401, "signature_invalid", "x-slack-request-timestamp"),
        (signed(form(payload()), secret="wrong"), 401, "signature_invalid", "does not match any SLACK_SIGNING_SECRET"),
        (signed(form(payload()), timestamp=NOW - 301), 401, "signature_invalid", "more than 300 s"),
        (signed(form(payload()), timestamp=NOW + 301), 401, "signature_invalid", "more than 300 s"),
        (signed(b"x" * 20001), 413, "body_too_large", "MAX_BODY_BYTES=20000"),
        (signed(form(payload(type="view_submission"))), 422, "payload_invalid", "expected a block_actions payload"),
        (signed(b"payload=%7Bnot-json"), 400, "invalid_json", "not valid JSON"),
        (signed(b"nothing=here"), 422, "payload_invalid", "expected the form field 'payload'"),
        (
            signed(form(payload(actions=[{"action_id": "delete_everything", "value": "event-1"}]))),
            422, "payload_invalid", "unknown action_id 'delete_everything'",
        ),
        (
            signed(form(payload(actions=[{"action_id": "circleci_events.approve"}]))),
            422, "payload_invalid", "carries no id",
        ),
        (
            signed(form(payload(team={"id": "T0OTHER"}, user={"id": "U0EVE", "team_id": "T0OTHER"}))),
            403, "slack_team_refused", "'T0OTHER'",
        ),
    ],
)  # fmt: skip
def test_a_bad_request_is_refused_in_plain_words_and_nothing_is_queued(
    client, server, request_kwargs, status, code, message
) -> None:
    answer = client.post("/slack/interactions", **request_kwargs)
    assert answer.status_code == status
    body = answer.json()
    assert body["error_code"] == code and message in body["message"]
    signature = request_kwargs["headers"].get("x-slack-signature")
    assert SLACK_SECRET not in answer.text and (signature is None or signature not in answer.text)
    assert queued(server) == []


def test_without_a_signing_secret_the_route_does_not_exist() -> None:
    app = create_app(Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET}), redis=fakeredis.FakeAsyncRedis())
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/slack/interactions", **signed(form(payload()))).status_code == 404


def test_redis_down_answers_503_and_tells_the_clicker_at_once() -> None:
    sink_app = create_sink()
    sink: Sink = sink_app.state.sink
    with running(sink_app) as base:
        down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        app = create_app(settings(), redis=down, clock=FakeClock(NOW))
        with TestClient(app, raise_server_exceptions=False) as client:
            started = time.monotonic()
            answer = client.post("/slack/interactions", **signed(form(payload(response_url=f"{base}/slack/reply"))))
            took = time.monotonic() - started
    assert answer.status_code == 503 and answer.json()["error_code"] == "redis_unavailable"
    [reply] = sink.delivered("/slack/reply")
    assert reply.body["response_type"] == "ephemeral" and "nothing was done" in reply.body["text"]
    assert took < 60  # a bound, not a speed claim: the answer never waits on a hung Redis
