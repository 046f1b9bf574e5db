"""The console under /ui: absent without ADMIN_TOKEN; a login form, a signed expiring session and a
CSRF token on every post; pages that read through workers/operations.py, escape what CircleCI
sent and say so when Redis is away."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from config.settings import Settings
from service.app import create_app
from service.console.pages import BRANCH_CELLS, LETTERS_SHOWN
from service.console.session import COOKIE, SessionSigner
from service.login_limit import BURST
from service.signature import sign
from tests.conftest import SECRET
from tests.service.delivery_flow import ROUTES, DeliveryFlow
from workers.delivery.dead_letters import DeadLetter, DeadLetters
from workers.transition import TransitionStore

pytestmark = pytest.mark.integration

TOKEN = "admin-token-value-of-at-least-32-characters"
XSS = "<img src=x onerror=alert(1)>"
PAGES = ["/ui/", "/ui/events", "/ui/dead-letters", "/ui/branches", "/ui/config"]


@pytest.fixture
def flow(redis_url: str, tmp_path: Path) -> Iterator[DeliveryFlow]:
    with DeliveryFlow(redis_url, tmp_path) as flow:
        yield flow


def app_client(env: dict[str, str], **extra: str) -> TestClient:
    settings = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET, "ADMIN_TOKEN": TOKEN, **env, **extra})
    return TestClient(create_app(settings), raise_server_exceptions=False, base_url="https://testserver")


@pytest.fixture
def anonymous(flow: DeliveryFlow) -> Iterator[TestClient]:
    with app_client(flow.env) as client:
        yield client


@pytest.fixture
def console(anonymous: TestClient) -> TestClient:
    login(anonymous)
    return anonymous


def login(client: TestClient, token: str = TOKEN) -> object:
    return client.post("/ui/login", data={"token": token, "next": "/ui/events"}, follow_redirects=False)


def csrf(client: TestClient, page: str = "/ui/") -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(page).text)
    assert found, "every page carries the session's CSRF token"
    return found.group(1)


def test_without_admin_token_there_is_no_console(flow: DeliveryFlow) -> None:
    settings = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET, **flow.env})
    with TestClient(create_app(settings)) as client:
        assert client.get("/ui/login").status_code == 404
        assert client.get("/ui/").status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_without_a_session_a_page_sends_to_the_login_form_and_shows_nothing(anonymous: TestClient, page: str) -> None:
    answer = anonymous.get(page, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=")
    assert answer.text == ""


def test_login_sets_a_strict_httponly_secure_expiring_cookie(anonymous: TestClient) -> None:
    answer = login(anonymous)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/events"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Secure", "Path=/ui", "Max-Age=28800"):
        assert attribute.lower() in cookie.lower()
    assert TOKEN not in cookie
    assert anonymous.get("/ui/events").status_code == 200


def test_over_plain_http_the_cookie_is_not_secure(flow: DeliveryFlow) -> None:
    with app_client(flow.env) as client:
        client.base_url = client.base_url.copy_with(scheme="http")
        assert "secure" not in login(client).headers["set-cookie"].lower()


def test_a_wrong_token_is_refused_and_logged_without_the_token(anonymous: TestClient) -> None:
    with pytest.MonkeyPatch.context():
        from structlog.testing import capture_logs

        with capture_logs() as logs:
            answer = login(anonymous, "x" * 40)
    assert answer.status_code == 401 and "not the admin token" in answer.text
    assert "set-cookie" not in answer.headers
    assert [e["event"] for e in logs] == ["console_login_failed"]
    assert "x" * 40 not in str(logs)


def test_the_login_form_answers_429_once_the_limit_is_reached(anonymous: TestClient) -> None:
    answers = [login(anonymous, "wrong-" * 8).status_code for _ in range(BURST + 1)]
    assert answers == [401] * BURST + [429]
    assert login(anonymous).status_code == 429  # even the right token waits: guessing is not rewarded


@pytest.mark.parametrize(
    "cookie",
    ["", "garbage", "e30.0000", "tampered"],
    ids=["empty", "garbage", "bad-signature", "tampered"],
)
def test_a_forged_or_altered_session_is_no_session(anonymous: TestClient, cookie: str) -> None:
    if cookie == "tampered":
        issued, _ = SessionSigner(TOKEN, lifetime=60).issue()
        payload, _, signature = issued.rpartition(".")
        cookie = payload[:-2] + "AA." + signature
    anonymous.cookies.set(COOKIE, cookie, path="/ui")
    assert anonymous.get("/ui/events", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("page", PAGES)
def test_an_expired_session_cookie_sends_to_the_login_form_and_shows_nothing(anonymous: TestClient, page: str) -> None:
    expired, _ = SessionSigner(TOKEN, lifetime=3600).issue(now=time.time() - 3601)
    anonymous.cookies.set(COOKIE, expired, path="/ui")
    answer = anonymous.get(page, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login?next=")
    assert answer.text == ""


def test_an_expired_session_is_no_session() -> None:
    signer = SessionSigner(TOKEN, lifetime=60)
    cookie, _ = signer.issue(now=1000.0)
    assert signer.read(cookie, now=1059.0) is not None
    assert signer.read(cookie, now=1061.0) is None
    assert SessionSigner("another-admin-token-of-32-characters!!", lifetime=60).read(cookie, now=1001.0) is None


@pytest.mark.parametrize("token", [None, "", "0" * 32], ids=["missing", "empty", "wrong"])
def test_a_post_without_the_right_csrf_token_is_403_and_does_nothing(
    console: TestClient, flow: DeliveryFlow, token: str | None
) -> None:
    letters = DeadLetters(flow.redis, ttl=3600)
    letters.put(DeadLetter("e1:ops", "e1", "ops", "rejected", dead_at=time.time()))
    data = {} if token is None else {"csrf": token}
    answer = console.post("/ui/dead-letters/e1:ops/purge", data=data, follow_redirects=False)
    assert answer.status_code == 403 and "CSRF" in answer.text
    assert letters.get("e1:ops") is not None


def test_a_post_with_an_expired_session_is_403_and_does_nothing(anonymous: TestClient, flow: DeliveryFlow) -> None:
    letters = DeadLetters(flow.redis, ttl=3600)
    letters.put(DeadLetter("e1:ops", "e1", "ops", "rejected", dead_at=time.time()))
    answer = anonymous.post("/ui/dead-letters/e1:ops/purge", data={"csrf": "0" * 32}, follow_redirects=False)
    assert answer.status_code == 403 and "log in again" in answer.text
    assert letters.get("e1:ops") is not None


def test_purge_with_the_csrf_token_forgets_the_letter(console: TestClient, flow: DeliveryFlow) -> None:
    letters = DeadLetters(flow.redis, ttl=3600)
    letters.put(DeadLetter("e1:ops", "e1", "ops", "rejected", dead_at=time.time()))
    assert "Purge this dead letter?" in console.get("/ui/dead-letters/e1:ops/purge").text
    answer = console.post("/ui/dead-letters/e1:ops/purge", data={"csrf": csrf(console)}, follow_redirects=False)
    assert answer.status_code == 303 and letters.get("e1:ops") is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/ui/events/no-such-event/replay", "no enriched event 'no-such-event'"),
        ("/ui/dead-letters/no-such:ops/replay", "no dead letter 'no-such:ops'"),
        ("/ui/dead-letters/no-such:ops/purge", "no dead letter 'no-such:ops'"),
    ],
)
def test_acting_on_an_id_that_does_not_exist_is_404(console: TestClient, path: str, message: str) -> None:
    answer = console.post(path, data={"csrf": csrf(console)})
    assert answer.status_code == 404
    assert message.replace("'", "&#39;") in answer.text


def test_a_missing_event_page_is_404(console: TestClient) -> None:
    assert console.get("/ui/events/nope").status_code == 404


def test_every_answer_carries_the_security_headers(console: TestClient) -> None:
    for page in [*PAGES, "/ui/login", "/ui/static/console.css"]:
        headers = console.get(page).headers
        assert headers["content-security-policy"].startswith("default-src 'self'; frame-ancestors 'none'")
        assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads(console: TestClient, flow: DeliveryFlow, page: str) -> None:
    flow.deliver(flow.event())
    assert console.get(page).status_code == 200


def test_the_overview_shows_the_alert_rules_that_would_fire_now(console: TestClient, flow: DeliveryFlow) -> None:
    quiet = console.get("/ui/").text
    assert 'class="alert-inactive" data-alert="CircleCIEventsWebhookSignatureFailures"' in quiet
    body = json.dumps(flow.event()).encode()
    for _ in range(6):  # the rule: more than 5 in 15 minutes
        refused = console.post("/webhooks/circleci", content=body, headers={
            "content-type": "application/json", "circleci-signature": sign(body, "not-the-secret-" * 2)})  # fmt: skip
        assert refused.status_code == 401
    page = console.get("/ui/").text
    assert 'class="alert-firing" data-alert="CircleCIEventsWebhookSignatureFailures"' in page
    assert "circleci-events refuses webhook deliveries for their signature" in page
    assert 'class="alert-inactive" data-alert="CircleCIEventsDeadLetters"' in page


KEYSPACE_SCANS = ("scan", "keys", "hscan", "sscan", "zscan")


def test_no_page_scans_the_keyspace(console: TestClient, flow: DeliveryFlow) -> None:
    """Lists, filters, the overview's alerts and the feed read indexes: Redis counts every command
    it ran (INFO commandstats), and SCAN or KEYS is none of them."""
    events = [flow.deliver(flow.event(branch=f"b-{i}")) for i in range(3)]
    DeadLetters(flow.redis, ttl=3600).put(DeadLetter("e1:ops", "e1", "ops", "rejected", dead_at=time.time()))
    paths = [*PAGES, f"/ui/events/{events[0]['event_id']}", "/ui/dead-letters/e1:ops/purge",
             "/ui/dead-letters/replay?handler=ops",
             *(f"/ui/events?{field}=x" for field in ("project", "branch", "workflow", "status", "transition",
                                                     "outcome", "pipeline", "id_prefix"))]  # fmt: skip
    flow.redis.config_resetstat()
    for path in paths:
        assert console.get(path).status_code == 200, path
    ran = {name.removeprefix("cmdstat_") for name in flow.redis.info("commandstats")}
    assert "zrevrangebyscore" in ran or "zrange" in ran, f"the pages read Redis: {sorted(ran)}"
    assert not ran & set(KEYSPACE_SCANS), sorted(ran)


def test_the_dead_letters_page_shows_the_newest_hundred_and_counts_the_rest(
    console: TestClient, flow: DeliveryFlow
) -> None:
    letters = DeadLetters(flow.redis, ttl=3600)
    for n in range(LETTERS_SHOWN + 5):
        letters.put(DeadLetter(f"e{n}:ops", f"e{n}", "ops", "rejected", dead_at=time.time() - 1000 + n))
    page = console.get("/ui/dead-letters").text
    assert page.count('class="replay"') == LETTERS_SHOWN
    assert f'/ui/events/e{LETTERS_SHOWN + 4}"' in page and '/ui/events/e0"' not in page, "newest first"
    assert f"The newest {LETTERS_SHOWN} of {LETTERS_SHOWN + 5} matching" in page
    assert f"Replay all {LETTERS_SHOWN + 5} matching" in page


def test_the_branch_grid_shows_the_refs_built_most_recently(console: TestClient, flow: DeliveryFlow) -> None:
    states = TransitionStore(flow.redis)
    for n in range(BRANCH_CELLS + 1):
        states.record(project="gh/acme/api", ref=f"b-{n}", workflow="build", status="success", pipeline_number=n,
                      happened_at="2026-12-01T10:00:00Z")  # fmt: skip
    page = console.get("/ui/branches").text
    assert page.count('<div class="cell') == BRANCH_CELLS
    assert "filter by project or branch to see others" in page
    filtered = console.get("/ui/branches", params={"branch": "b-0"}).text
    assert filtered.count('<div class="cell') == 1 and "see others" not in filtered


def test_the_branch_grid_puts_failing_refs_first_and_counts_them(console: TestClient, flow: DeliveryFlow) -> None:
    states = TransitionStore(flow.redis)
    for ref, status in [("a-green", "success"), ("b-red", "failed"), ("c-green", "success")]:
        states.record(project="gh/acme/api", ref=ref, workflow="build", status=status, pipeline_number=1,
                      happened_at="2026-12-01T10:00:00Z")  # fmt: skip
    page = console.get("/ui/branches").text
    assert re.findall(r'data-ref="gh/acme/api :: ([a-z-]+) :: build"', page) == ["b-red", "a-green", "c-green"]
    assert '<span class="bad">1 failing</span> · 2 passing' in page


def test_the_dead_letter_filter_offers_the_handlers_and_reasons_kept(console: TestClient, flow: DeliveryFlow) -> None:
    letters = DeadLetters(flow.redis, ttl=3600)
    letters.put(DeadLetter("e1:ops", "e1", "ops", "rejected", dead_at=time.time()))
    letters.put(DeadLetter("e1:pager", "e1", "pager", "retry_budget_exhausted", dead_at=time.time()))
    page = console.get("/ui/dead-letters", params={"reason": "rejected"}).text
    assert re.findall(r'<option value="([a-z_]+)"', page) == ["ops", "pager", "rejected", "retry_budget_exhausted"]
    assert '<option value="rejected" selected>' in page and page.count('class="replay"') == 1


def test_events_filter_and_page_newest_first(console: TestClient, flow: DeliveryFlow) -> None:
    failed = [flow.deliver(flow.event()) for _ in range(3)]
    passed = flow.deliver(flow.event(status="success"))
    page = console.get("/ui/events", params={"status": "failed"}).text
    assert all(e["event_id"] in page for e in failed) and passed["event_id"] not in page
    ids = re.findall(r'href="/ui/events/([0-9a-f-]{36})"', page)
    assert ids == [e["event_id"] for e in reversed(failed)]


@pytest.mark.parametrize(
    "value",
    ["<script>", "' OR 1=1 --", "a*b?[c]\\", "%00", "ü/ä:ß", "x" * 200, "\u202e"],
    ids=["tag", "quote", "glob", "nul", "unicode", "long", "bidi"],
)
def test_filters_with_odd_characters_find_nothing_and_break_nothing(console: TestClient, value: str) -> None:
    for name in ("project", "branch", "status", "outcome", "id_prefix", "pipeline"):
        answer = console.get("/ui/events", params={name: value})
        assert answer.status_code == 200
        assert "No event matches" in answer.text and "<script>" not in answer.text


def test_too_long_filters_and_a_bad_cursor_are_400(console: TestClient) -> None:
    assert console.get("/ui/events", params={"project": "x" * 201}).status_code == 400
    assert console.get("/ui/events", params={"before": "yesterday"}).status_code == 400


def test_what_circleci_sent_is_shown_as_text(console: TestClient, flow: DeliveryFlow) -> None:
    event = flow.event()
    event["vcs"] = {**event["vcs"], "commit_subject": XSS, "branch": XSS}
    event["failed_jobs"][0]["name"] = XSS
    event["failed_jobs"][0]["failed_step"] = {"name": XSS, "exit_code": 1, "status": "failed", "log_tail": XSS}
    flow.deliver(event)
    for page in (f"/ui/events/{event['event_id']}", "/ui/events"):
        text = console.get(page).text
        assert XSS not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_the_event_page_shows_attempts_and_replays_one_handler(console: TestClient, flow: DeliveryFlow) -> None:
    event = flow.deliver(flow.event())
    page = console.get(f"/ui/events/{event['event_id']}").text
    assert page.count('class="attempt') == 2  # ops and audit, one attempt each
    answer = console.post(
        f"/ui/events/{event['event_id']}/replay", data={"csrf": csrf(console), "handler": "ops"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert "Queued again" in console.get(answer.headers["location"]).text


def test_the_event_page_shows_each_message_as_it_was_sent_after_the_routes_change(
    console: TestClient, flow: DeliveryFlow
) -> None:
    event = flow.deliver(flow.event())
    [posted] = flow.sink.delivered("/slack/ops")
    flow.routes_file.write_text(
        ROUTES.replace('"${SINK}/slack/ops"}', '"${SINK}/slack/ops", template: "now: {{ event.status }}"}')
    )
    page = console.get(f"/ui/events/{event['event_id']}").text
    sent, now = page.split("What a replay would send now")
    assert sent.count("as it was sent (1 request)") == 2  # ops and audit
    assert "Transition: broke main" in posted.body["text"] and "Transition: broke main" in sent
    assert f"POST {flow.env['SINK']}/…" in sent and "/slack/ops" not in page
    assert "now: failed" in now and "now: failed" not in sent


def test_redis_down_shows_a_banner_and_no_stack_trace(flow: DeliveryFlow) -> None:
    with app_client(flow.env, REDIS_URL="redis://127.0.0.1:1") as client:
        login(client)
        for page in PAGES[:-1]:
            answer = client.get(page)
            assert answer.status_code == 503
            assert "Redis is not answering" in answer.text and "Traceback" not in answer.text
