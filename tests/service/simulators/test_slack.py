"""The Slack simulator answers slack_sdk's WebClient as Slack does, and checks every message's blocks."""

from __future__ import annotations

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from service.simulators.slack_workspace import Workspace, validate_blocks

TOKEN = "xoxb-sim-token"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi <@U0ADA>"}}


@pytest.fixture
def served(slack_served: tuple[str, Workspace]) -> tuple[str, Workspace]:
    return slack_served


@pytest.fixture
def sim(served: tuple[str, Workspace]) -> tuple[str, Workspace]:
    served[1].reset()
    return served


def client(base: str, token: str = TOKEN) -> WebClient:
    return WebClient(token=token, base_url=f"{base}/api/", retry_handlers=[])


def error_of(call) -> tuple[int, str]:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response.status_code, caught.value.response["error"]


def test_post_reply_and_update_make_one_thread(sim) -> None:
    base, workspace = sim
    web = client(base)
    root = web.chat_postMessage(channel="#ci", text="broke", blocks=[SECTION])
    assert root["channel"] == "C0CI"
    web.chat_postMessage(channel=root["channel"], thread_ts=root["ts"], text="still failing")
    web.chat_update(channel=root["channel"], ts=root["ts"], text="fixed", blocks=[SECTION])

    [message] = workspace.channel_messages("ci")
    assert (message.text, message.edits, message.mentions) == ("fixed", 1, ["U0ADA"])
    assert [v["text"] for v in message.versions] == ["broke"]
    assert [r.text for r in workspace.replies(message)] == ["still failing"]
    view = workspace.view("ci")
    assert "#ci (C0CI)" in view and "(edited 1 time)" in view and "hi @ada" in view and "│ " in view


def test_lookup_by_email_and_a_direct_message(sim) -> None:
    base, workspace = sim
    web = client(base)
    assert web.users_lookupByEmail(email="Ada@Example.com")["user"]["id"] == "U0ADA"
    assert error_of(lambda: web.users_lookupByEmail(email="nobody@example.com")) == (200, "users_not_found")
    im = web.conversations_open(users="U0ADA")["channel"]["id"]
    web.chat_postMessage(channel=im, text="you broke main")
    assert [m.text for m in workspace.channel_messages("U0ADA")] == ["you broke main"]


@pytest.mark.parametrize(
    ("token", "channel", "error"),
    [
        ("xoxb-wrong", "#ci", "invalid_auth"),
        ("", "#ci", "not_authed"),
        (TOKEN, "#nowhere", "channel_not_found"),
        (TOKEN, "C0PRIVATE", "not_in_channel"),
    ],
)
def test_slack_errors_are_200_with_ok_false(sim, token: str, channel: str, error: str) -> None:
    base, workspace = sim
    assert error_of(lambda: client(base, token).chat_postMessage(channel=channel, text="x")) == (200, error)
    assert workspace.messages == []


def test_a_token_without_the_scope_gets_missing_scope(sim) -> None:
    base, workspace = sim
    workspace.tokens["xoxb-chat-only"] = ("chat:write",)
    with pytest.raises(SlackApiError) as caught:
        client(base, "xoxb-chat-only").users_lookupByEmail(email="ada@example.com")
    assert caught.value.response["error"] == "missing_scope"
    assert caught.value.response["needed"] == "users:read.email"


def test_injected_ratelimited_is_a_429_with_retry_after_once(sim) -> None:
    base, workspace = sim
    workspace.add_fault(method="chat.postMessage", error="ratelimited", retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        client(base).chat_postMessage(channel="#ci", text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["retry-after"] in ("7", ["7"])
    assert client(base).chat_postMessage(channel="#ci", text="x")["ok"]


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found", "not_in_channel"])
def test_injected_errors_answer_as_slack_does(sim, error: str) -> None:
    base, _ = sim
    httpx.post(f"{base}/_slack/faults", json={"method": "chat.*", "error": error})
    assert error_of(lambda: client(base).chat_postMessage(channel="#ci", text="x")) == (200, error)
    assert httpx.get(f"{base}/_slack/calls").json()["calls"] == {"chat.postMessage": 1}


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "sectionn", "text": {"type": "mrkdwn", "text": "x"}}],
        [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "colour": "red"}],
        [SECTION] * 51,
    ],
    ids=["unknown type", "header too long", "section too long", "unknown key", "51 blocks"],
)
def test_blocks_slack_would_refuse_are_invalid_blocks(sim, blocks: list) -> None:
    base, workspace = sim
    assert validate_blocks(blocks)
    assert error_of(lambda: client(base).chat_postMessage(channel="#ci", text="x", blocks=blocks)) == (
        200,
        "invalid_blocks",
    )
    assert workspace.messages == []


def test_an_update_of_an_unknown_message_is_message_not_found(sim) -> None:
    base, _ = sim
    assert error_of(lambda: client(base).chat_update(channel="C0CI", ts="1.000001", text="x")) == (
        200,
        "message_not_found",
    )


def test_a_message_needs_text_or_blocks(sim) -> None:
    base, _ = sim
    answer = httpx.post(
        f"{base}/api/chat.postMessage", json={"channel": "#ci"}, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert answer.json() == {"ok": False, "error": "no_text"}


def test_control_endpoints_add_users_and_channels_and_list_messages(sim) -> None:
    base, _ = sim
    httpx.post(f"{base}/_slack/users", json={"id": "U0LIN", "name": "lin", "email": "lin@example.com"})
    httpx.post(f"{base}/_slack/channels", json={"id": "C0OPS", "name": "ops"})
    web = client(base)
    assert web.users_lookupByEmail(email="lin@example.com")["user"]["id"] == "U0LIN"
    web.chat_postMessage(channel="ops", text="hello <@U0LIN>")
    [listed] = httpx.get(f"{base}/_slack/messages", params={"channel": "ops"}).json()["messages"]
    assert (listed["channel"], listed["mentions"]) == ("C0OPS", ["U0LIN"])
    assert "hello @lin" in httpx.get(f"{base}/_slack/view", params={"channel": "ops"}).text
