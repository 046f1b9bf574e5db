"""The admin API: absent without ADMIN_TOKEN, 401 without the right bearer token, reads and replays with it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from config.settings import Settings
from service.app import create_app
from service.login_limit import BURST
from tests.conftest import ISO_UTC, SECRET
from tests.service.delivery_flow import DeliveryFlow

pytestmark = pytest.mark.integration

TOKEN = "admin-token-value-of-at-least-32-characters"
AUTH = {"authorization": f"Bearer {TOKEN}"}
ROUTES = [
    ("GET", "/admin/events"),
    ("GET", "/admin/events/some-id"),
    ("POST", "/admin/events/some-id/replay"),
    ("GET", "/admin/dead-letters"),
    ("POST", "/admin/dead-letters/some-id:ops/replay"),
]


@pytest.fixture
def admin_client() -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def start(redis_url: str, **env: str) -> TestClient:
        settings = Settings.from_environ({"REDIS_URL": redis_url, "CIRCLECI_WEBHOOK_SECRETS": SECRET, **env})
        client = TestClient(create_app(settings), raise_server_exceptions=False).__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def flow(redis_url: str, tmp_path: Path) -> Iterator[DeliveryFlow]:
    with DeliveryFlow(redis_url, tmp_path) as flow:
        yield flow


@pytest.fixture
def admin(admin_client, redis_url: str) -> TestClient:
    return admin_client(redis_url, ADMIN_TOKEN=TOKEN)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_admin_token_the_routes_do_not_exist(admin_client, redis_url: str, method: str, path: str) -> None:
    answer = admin_client(redis_url).request(method, path, headers=AUTH)
    assert answer.status_code == 404
    assert answer.json()["error_code"] == "not_found"
    assert answer.json()["message"] == f"no route for {method} {path}"


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}, {"authorization": TOKEN}],
    ids=["none", "wrong-token", "other-scheme", "no-scheme"],
)
def test_without_the_right_token_it_is_401(admin: TestClient, method: str, path: str, headers: dict) -> None:
    answer = admin.request(method, path, headers=headers)
    assert answer.status_code == 401
    body = answer.json()
    assert set(body) == {"error_code", "message", "details", "request_id"}
    assert body["error_code"] == "unauthorized" and TOKEN not in answer.text
    assert answer.headers["www-authenticate"] == "Bearer"


def test_failed_tokens_are_logged_without_the_token_and_rate_limited_per_address(admin: TestClient) -> None:
    guess = "guess-" + "g" * 40
    with capture_logs() as logs:
        answers = [admin.get("/admin/events", headers={"authorization": f"Bearer {guess}"}) for _ in range(BURST + 3)]
        right = admin.get("/admin/events", headers=AUTH)
    assert [a.status_code for a in answers] == [401] * BURST + [429] * 3
    assert answers[-1].json()["error_code"] == "rate_limited" and int(answers[-1].headers["retry-after"]) >= 1
    assert right.status_code == 429  # even the right token waits: guessing is not rewarded
    failed = [x for x in logs if x["event"] == "admin_login_failed"]
    assert len(failed) == BURST and failed[0]["path"] == "/admin/events" and failed[0]["client"] == "testclient"
    assert len([x for x in logs if x["event"] == "admin_login_throttled"]) == 1  # sampled
    assert guess not in str(logs) and TOKEN not in str(logs)


def test_guesses_at_the_admin_api_and_at_the_console_share_one_count(admin: TestClient) -> None:
    for _ in range(BURST):
        assert admin.get("/admin/dead-letters", headers={"authorization": "Bearer wrong"}).status_code == 401
    answer = admin.post("/ui/login", data={"token": TOKEN, "next": "/ui/"}, follow_redirects=False)
    assert answer.status_code == 429


def test_lists_and_shows_events(admin: TestClient, flow: DeliveryFlow) -> None:
    failed = flow.deliver(flow.event())
    passed = flow.deliver(flow.event(status="success"))
    listed = admin.get("/admin/events", headers=AUTH).json()["events"]
    assert [e["event_id"] for e in listed] == [passed["event_id"], failed["event_id"]]
    only = admin.get("/admin/events", params={"status": "failed", "limit": 5}, headers=AUTH).json()["events"]
    assert [e["event_id"] for e in only] == [failed["event_id"]]
    record = admin.get(f"/admin/events/{failed['event_id']}", headers=AUTH).json()
    assert [(d["handler"], d["outcome"], d["attempts"]) for d in record["deliveries"]] == [
        ("audit", "delivered", 1),
        ("ops", "delivered", 1),
    ]
    assert ISO_UTC.fullmatch(record["attempts"][0]["at"])
    assert listed[1]["deliveries"] == [
        {"handler": "audit", "outcome": "delivered", "attempts": 1},
        {"handler": "ops", "outcome": "delivered", "attempts": 1},
    ]


@pytest.mark.parametrize(
    "request_kwargs",
    [{"params": {"handler": "ops", "force": "true"}}, {"json": {"handler": "ops", "force": True}}],
    ids=["query", "json-body"],
)
def test_a_forced_replay_of_one_handler_posts_once_more(admin: TestClient, flow: DeliveryFlow, request_kwargs) -> None:
    event = flow.deliver(flow.event())
    answer = admin.post(f"/admin/events/{event['event_id']}/replay", headers=AUTH, **request_kwargs)
    assert answer.status_code == 202
    assert answer.json() == {
        "event_id": event["event_id"],
        "queued": [f"{event['event_id']}:ops"],
        "already_delivered": [],
    }
    flow.work()
    assert len(flow.sink.delivered("/slack/ops")) == 2
    assert len(flow.sink.delivered("/hooks/audit")) == 1


def test_a_dead_letter_is_listed_and_its_replay_posts_exactly_once(admin: TestClient, flow: DeliveryFlow) -> None:
    flow.sink.add_fault(kind="bad_request", path="/slack/ops")
    event = flow.deliver(flow.event())
    flow.sink.clear_faults()
    [letter] = admin.get("/admin/dead-letters", headers=AUTH).json()["dead_letters"]
    assert (letter["delivery_id"], letter["reason"], letter["last_status"]) == (
        f"{event['event_id']}:ops",
        "rejected",
        400,
    )
    assert ISO_UTC.fullmatch(letter["dead_at"]) and ISO_UTC.fullmatch(letter["first_attempt_at"])
    assert admin.post(f"/admin/dead-letters/{letter['delivery_id']}/replay", headers=AUTH).status_code == 202
    again = admin.post(f"/admin/dead-letters/{letter['delivery_id']}/replay", headers=AUTH)
    assert again.status_code == 404
    flow.work()
    assert len(flow.sink.delivered("/slack/ops")) == 1


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/admin/events/unknown", {}, 404, "not_found"),
        ("POST", "/admin/events/unknown/replay", {}, 404, "not_found"),
        ("GET", "/admin/events", {"params": {"limit": "0"}}, 400, "bad_request"),
        ("GET", "/admin/dead-letters", {"params": {"limit": "many"}}, 400, "bad_request"),
        ("POST", "/admin/events/unknown/replay", {"content": b"[1]"}, 400, "bad_request"),
    ],
)
def test_bad_requests_get_the_error_format(admin: TestClient, method, path, kwargs, status, code) -> None:
    answer = admin.request(method, path, headers=AUTH, **kwargs)
    assert (answer.status_code, answer.json()["error_code"]) == (status, code)


def test_redis_down_is_503(admin_client) -> None:
    down = admin_client("redis://127.0.0.1:1/0", ADMIN_TOKEN=TOKEN)
    answer = down.get("/admin/events", headers=AUTH)
    assert (answer.status_code, answer.json()["error_code"]) == (503, "redis_unavailable")


def test_a_replay_to_an_unknown_handler_is_a_404_listing_the_handlers(admin: TestClient, flow: DeliveryFlow) -> None:
    event = flow.deliver(flow.event())
    answer = admin.post(f"/admin/events/{event['event_id']}/replay", headers=AUTH, params={"handler": "nope"})
    assert answer.status_code == 404
    assert answer.json()["error_code"] == "unknown_handler"
    assert "no handler 'nope': the handlers are audit, " in answer.json()["message"]
