"""Behind an SSO proxy: CONSOLE_USER_HEADER names the console's user, believed only from a
TRUSTED_PROXIES peer; from anyone else it is ignored (the login form), and logged.

The peer is the test client's address here; tests/e2e/test_console_sso.py runs the same through
uvicorn, whose proxy headers replace the client address before the app sees it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from config.errors import ConfigurationError
from config.settings import Settings
from service.app import create_app
from service.console.session import COOKIE, SessionSigner
from tests.conftest import SECRET
from tests.service.delivery_flow import DeliveryFlow
from workers.delivery.dead_letters import DeadLetter, DeadLetters

pytestmark = pytest.mark.integration

TOKEN = "admin-token-value-of-at-least-32-characters"
PROXY = "10.0.0.5"
HEADER = "X-Forwarded-User"


@pytest.fixture
def flow(redis_url: str, tmp_path: Path) -> Iterator[DeliveryFlow]:
    with DeliveryFlow(redis_url, tmp_path) as flow:
        yield flow


def settings(flow: DeliveryFlow) -> Settings:
    return Settings.from_environ({
        "CIRCLECI_WEBHOOK_SECRETS": SECRET, "ADMIN_TOKEN": TOKEN, "TRUSTED_PROXIES": "10.0.0.0/24",
        "CONSOLE_USER_HEADER": HEADER, **flow.env,
    })  # fmt: skip


def client_from(flow: DeliveryFlow, address: str) -> TestClient:
    app = create_app(settings(flow))
    return TestClient(app, raise_server_exceptions=False, base_url="https://testserver", client=(address, 40000))


def test_a_trusted_proxys_user_is_signed_in_without_the_login_form(flow: DeliveryFlow) -> None:
    with client_from(flow, PROXY) as proxy, capture_logs() as logs:
        answer = proxy.get("/ui/events", headers={HEADER: "alice@example.com"}, follow_redirects=False)
    assert answer.status_code == 200
    assert '<span class="user" title="named by the SSO proxy">alice@example.com</span>' in answer.text
    assert "Log out" not in answer.text, "the SSO proxy, not the console, ends the session"
    session = SessionSigner(TOKEN, lifetime=60).read(answer.cookies[COOKIE].strip('"'))
    assert session is not None and session.user == "alice@example.com"
    assert {"event": "console_login", "user": "alice@example.com", "via": "proxy"}.items() <= next(
        line for line in logs if line["event"] == "console_login"
    ).items()


@pytest.mark.parametrize("address", ["10.0.1.5", "192.0.2.1", "testclient"])
def test_the_header_from_an_untrusted_peer_is_ignored_and_logged(flow: DeliveryFlow, address: str) -> None:
    with client_from(flow, address) as spoofer, capture_logs() as logs:
        answer = spoofer.get("/ui/events", headers={HEADER: "alice", "X-Forwarded-For": PROXY},
                             follow_redirects=False)  # fmt: skip
        again = spoofer.get("/ui/", headers={HEADER: "alice"}, follow_redirects=False)
    assert answer.status_code == again.status_code == 303
    assert answer.headers["location"].startswith("/ui/login") and COOKIE not in answer.cookies
    ignored = [line for line in logs if line["event"] == "console_user_header_ignored"]
    assert len(ignored) == 1, "sampled: one line per peer a minute"
    assert ignored[0]["peer"] == address and "TRUSTED_PROXIES" in ignored[0]["reason"]


@pytest.mark.parametrize("value", ["", " ", "a" * 201, "alice\tadmin", "<script>", "bob (admin)"])
def test_a_value_that_is_not_a_user_name_is_ignored(flow: DeliveryFlow, value: str) -> None:
    with client_from(flow, PROXY) as proxy:
        answer = proxy.get("/ui/", headers={HEADER: value}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


def test_another_user_named_by_the_proxy_gets_a_session_of_their_own(flow: DeliveryFlow) -> None:
    with client_from(flow, PROXY) as proxy:
        proxy.get("/ui/", headers={HEADER: "alice"})
        answer = proxy.get("/ui/", headers={HEADER: "bob"})
    assert ">bob</span>" in answer.text and "alice" not in answer.text


def test_purge_and_replay_are_logged_with_the_proxys_user(flow: DeliveryFlow) -> None:
    letters = DeadLetters(flow.redis, ttl=3600)
    letters.put(DeadLetter("e1:ops", "e1", "ops", "rejected", dead_at=time.time()))
    letters.put(DeadLetter("e2:ops", "e2", "ops", "rejected", dead_at=time.time()))
    with client_from(flow, PROXY) as proxy, capture_logs(processors=[merge_contextvars]) as logs:
        page = proxy.get("/ui/dead-letters", headers={HEADER: "alice"}).text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token is not None
        headers = {HEADER: "alice", "X-Request-ID": "req-purge-1"}
        purged = proxy.post("/ui/dead-letters/e1:ops/purge", data={"csrf": token.group(1)}, headers=headers,
                            follow_redirects=False)  # fmt: skip
        proxy.post("/ui/dead-letters/e2:ops/replay", data={"csrf": token.group(1)}, headers={HEADER: "alice"})
    assert purged.status_code == 303 and letters.get("e1:ops") is None
    purge = next(line for line in logs if line["event"] == "console_dead_letter_purge")
    assert purge["user"] == "alice" and purge["delivery_id"] == "e1:ops" and purge["request_id"] == "req-purge-1"
    replay = next(line for line in logs if line["event"] == "console_dead_letter_replay")
    assert replay["user"] == "alice" and replay["request_id"]


def test_a_token_login_acts_as_the_admin_token(flow: DeliveryFlow) -> None:
    DeadLetters(flow.redis, ttl=3600).put(DeadLetter("e1:ops", "e1", "ops", "rejected", dead_at=time.time()))
    with client_from(flow, "192.0.2.1") as client, capture_logs() as logs:
        client.post("/ui/login", data={"token": TOKEN, "next": "/ui/dead-letters"})
        page = client.get("/ui/dead-letters").text
        assert "admin token" in page and "Log out" in page
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token is not None
        client.post("/ui/dead-letters/e1:ops/purge", data={"csrf": token.group(1)})
    purge = next(line for line in logs if line["event"] == "console_dead_letter_purge")
    assert purge["user"] == "(admin token)"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ADMIN_TOKEN": TOKEN}, "CONSOLE_USER_HEADER needs TRUSTED_PROXIES"),
        ({"TRUSTED_PROXIES": PROXY}, "CONSOLE_USER_HEADER needs ADMIN_TOKEN"),
        ({"ADMIN_TOKEN": TOKEN, "TRUSTED_PROXIES": PROXY, "CONSOLE_USER_HEADER": "X User"}, "an HTTP header name"),
    ],
)
def test_the_header_setting_needs_a_proxy_and_a_console(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": SECRET, "CONSOLE_USER_HEADER": HEADER, **env})
