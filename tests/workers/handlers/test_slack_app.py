"""slack_app: one thread per breakage on the Slack simulator (real HTTP), each step recorded once."""

from __future__ import annotations

import copy
import json
from typing import Any

import fakeredis
import httpx
import pytest

from config.errors import ConfigurationError, DeliveryRejected, DeliveryRetryable
from service.simulators.slack_workspace import Workspace
from tests.workers.handlers.conftest import alert_event, load_event
from workers.handlers import build_handler, transcript
from workers.handlers.base import HandlerConfig, HandlerContext
from workers.handlers.slack_app import SlackAppHandler
from workers.message import elapsed
from workers.threads import Thread, ThreadStore, thread_key

TOKEN = "xoxb-sim-token"
HOUR = 3600


@pytest.fixture
def served(slack_served: tuple[str, Workspace]) -> tuple[str, Workspace]:
    return slack_served


@pytest.fixture
def slack(served: tuple[str, Workspace]) -> Workspace:
    served[1].reset()
    return served[1]


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def handler(served: tuple[str, Workspace], redis: fakeredis.FakeRedis) -> SlackAppHandler:
    return make(served[0], redis)


def make(base: str, redis: Any = None, **options: str) -> SlackAppHandler:
    config = HandlerConfig(
        name="ci-app",
        type="slack_app",
        options={"token": TOKEN, "channel": "#ci", "api_url": f"{base}/api/", "template": None, **options},
    )
    handler = build_handler("ci-app", config, HandlerContext(redis=redis, timeout_seconds=2))
    assert isinstance(handler, SlackAppHandler)
    return handler


def at(kind: str, number: int, *, since: int = 131, failed: int = 1, hours: float = 0.0) -> dict[str, Any]:
    """The fixture's failure as pipeline `number` of a breakage that began at #`since`, `hours` later."""
    event = copy.deepcopy(load_event())
    event["event_id"] = f"event-{number}"
    event["pipeline"]["number"] = number
    event["happened_at"] = f"2021-09-02T{10 + int(hours):02d}:{int(hours % 1 * 60):02d}:42.918Z"
    event["transition"] = {
        "kind": kind,
        "previous_status": "failed" if kind != "broken" else "success",
        "previous_pipeline_number": number - 1,
        "failing_since_pipeline_number": since,
        "failing_since": "2021-09-02T10:00:42.918Z",
        "failed_pipelines": failed,
    }
    if kind == "fixed":
        event["status"] = event["workflow"]["status"] = "success"
        event["failed_jobs"] = []
        event["vcs"]["author_name"] = "Grace Hopper"
    return event


def send(handler: SlackAppHandler, event: dict[str, Any]) -> None:
    handler.send(event, delivery_id=f"{event['event_id']}:ci-app", http=httpx.Client())


def test_a_break_two_failures_and_the_fix_make_one_thread(handler: SlackAppHandler, slack: Workspace) -> None:
    send(handler, at("broken", 131))
    send(handler, at("still_failing", 132, failed=2, hours=1))
    send(handler, at("still_failing", 133, failed=3, hours=2))
    send(handler, at("fixed", 134, failed=3, hours=2.5))

    [root] = slack.channel_messages("ci")
    replies = [r.text for r in slack.replies(root)]
    assert len(replies) == 3 and root.edits == 3
    assert "still failing" in replies[0] and "pipeline #132" in replies[0] and "3 failed tests" in replies[0]
    assert "pipeline #133" in replies[1]
    assert "*fixed* in" in replies[2] and "#134" in replies[2] and "Grace Hopper" in replies[2]
    assert "after 3 failed pipelines · 2 h 30 min" in replies[2]
    streak = str(root.versions[2]["blocks"][1])
    assert "failing since #131" in streak and "3 pipelines" in streak and "2 h" in streak
    assert root.blocks[0]["text"]["text"] == "✅ Fixed: build-test-deploy on main"
    assert "test_login" in str(root.blocks)  # the original failure stays under the fix


def test_a_retried_delivery_posts_nothing_twice(handler: SlackAppHandler, slack: Workspace) -> None:
    broken, failing = at("broken", 131), at("still_failing", 132, failed=2)
    for event in (broken, broken, failing, failing):
        send(handler, event)
    [root] = slack.channel_messages("ci")
    assert len(slack.replies(root)) == 1
    assert root.edits == 2  # chat.update is the same call again: idempotent


def test_a_failed_update_is_retried_without_a_second_reply(handler: SlackAppHandler, slack: Workspace) -> None:
    send(handler, at("broken", 131))
    slack.add_fault(method="chat.update", status=500)
    with pytest.raises(DeliveryRetryable):
        send(handler, at("still_failing", 132, failed=2))
    send(handler, at("still_failing", 132, failed=2))
    [root] = slack.channel_messages("ci")
    assert len(slack.replies(root)) == 1 and root.edits == 1


def test_still_failing_without_a_known_thread_starts_one_with_the_streak(
    handler: SlackAppHandler, slack: Workspace
) -> None:
    send(handler, at("still_failing", 140, since=138, failed=3, hours=5))
    [root] = slack.channel_messages("ci")
    assert "failing since #138" in str(root.blocks[1]) and "3 pipelines" in str(root.blocks[1])
    send(handler, at("still_failing", 141, since=138, failed=4, hours=6))
    assert len(slack.channel_messages("ci")) == 1 and len(slack.replies(root)) == 1


def test_a_new_breakage_gets_a_new_thread(handler: SlackAppHandler, slack: Workspace) -> None:
    send(handler, at("broken", 131))
    send(handler, at("fixed", 132))
    send(handler, at("broken", 140, since=140))
    assert len(slack.channel_messages("ci")) == 2


def test_a_late_older_failure_replies_but_leaves_the_fix_on_the_root(
    handler: SlackAppHandler, slack: Workspace
) -> None:
    send(handler, at("broken", 131))
    send(handler, at("fixed", 133, failed=2))
    send(handler, at("still_failing", 132, failed=2))  # its delivery was retried past the fix
    [root] = slack.channel_messages("ci")
    assert root.edits == 1 and root.blocks[0]["text"]["text"].startswith("✅ Fixed")
    assert len(slack.replies(root)) == 2


@pytest.mark.parametrize("kind", ["passing", "first_seen", "canceled", "stale"])
def test_other_transitions_are_top_level_messages(handler: SlackAppHandler, slack: Workspace, kind: str) -> None:
    event = at(kind, 135)
    event["status"] = event["workflow"]["status"] = "success"
    send(handler, event)
    assert [m.thread_ts for m in slack.messages] == [None]


def test_a_fix_without_a_known_thread_is_a_top_level_message(handler: SlackAppHandler, slack: Workspace) -> None:
    send(handler, at("fixed", 134))
    [message] = slack.channel_messages("ci")
    assert message.blocks[0]["text"]["text"].startswith("✅ build-test-deploy succeeded")


def test_another_delivery_changing_the_thread_makes_this_one_wait(
    handler: SlackAppHandler, slack: Workspace, redis: fakeredis.FakeRedis
) -> None:
    event = at("broken", 131)
    key = thread_key("ci-app", event)
    assert key is not None
    assert ThreadStore(redis, ttl=60).lock(key, "another-event:ci-app").acquire(5000)
    with pytest.raises(DeliveryRetryable, match="another delivery is changing this breakage's thread") as info:
        send(handler, event)
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 7
    assert slack.messages == []


@pytest.mark.parametrize(
    ("fault", "advice"),
    [
        ({"error": "not_in_channel"}, "invite it there (/invite @<your app> in #ci)"),
        ({"error": "invalid_auth"}, "check the handler's token"),
        ({"error": "channel_not_found"}, "use the channel's id"),
    ],
)
def test_permanent_slack_errors_are_rejected_with_what_to_do(
    handler: SlackAppHandler, slack: Workspace, fault: dict[str, str], advice: str
) -> None:
    slack.add_fault(method="chat.postMessage", **fault)
    with pytest.raises(DeliveryRejected) as info:
        send(handler, at("broken", 131))
    assert advice in info.value.message and advice in info.value.body_excerpt
    assert info.value.status == 200 and fault["error"] in info.value.message
    assert TOKEN not in info.value.message


def test_a_channel_the_app_is_not_in_is_not_in_channel(served: tuple[str, Workspace], slack: Workspace) -> None:
    with pytest.raises(DeliveryRejected, match="invite it there"):
        send(make(served[0], fakeredis.FakeRedis(), channel="#private"), at("broken", 131))


def test_ratelimited_is_retryable_after_retry_after(handler: SlackAppHandler, slack: Workspace) -> None:
    slack.add_fault(method="chat.postMessage", error="ratelimited", retry_after=7)
    with pytest.raises(DeliveryRetryable) as info:
        send(handler, at("broken", 131))
    assert (info.value.status, info.value.retry_after) == (429, 7.0)
    send(handler, at("broken", 131))
    assert len(slack.channel_messages("ci")) == 1


@pytest.mark.parametrize("fault", [{"status": 503}, {"error": "internal_error"}])
def test_slack_server_errors_are_retryable(handler: SlackAppHandler, slack: Workspace, fault: dict) -> None:
    slack.add_fault(method="chat.postMessage", **fault)
    with pytest.raises(DeliveryRetryable):
        send(handler, at("broken", 131))


def test_no_answer_is_retryable_and_says_why() -> None:
    handler = make("http://127.0.0.1:1", fakeredis.FakeRedis())
    with pytest.raises(DeliveryRetryable, match=r"chat\.postMessage: connection refused") as info:
        send(handler, at("still_failing", 132, failed=2))
    assert info.value.status is None


def test_render_shows_the_calls_for_a_given_thread(handler: SlackAppHandler) -> None:
    [root] = handler.render(at("broken", 131))["calls"]
    assert (root["method"], root["channel"]) == ("chat.postMessage", "#ci")
    thread = Thread(since=131, channel="C0CI", ts="1.000001", root={"text": "t", "blocks": root["blocks"]})
    reply, update = handler.render(at("still_failing", 132, failed=2), thread)["calls"]
    assert (reply["method"], reply["thread_ts"], update["method"], update["ts"]) == (
        "chat.postMessage",
        "1.000001",
        "chat.update",
        "1.000001",
    )
    assert handler.render(at("broken", 131), thread) == {"calls": []}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token": "not-a-token"}, "key 'token': expected a Slack bot token"),
        ({"api_url": "slack.com"}, "key 'api_url'"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        make("http://127.0.0.1:1", **options)
    assert "not-a-token" not in info.value.message


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(45, "45 s"), (720, "12 min"), (7200, "2 h"), (7500, "2 h 5 min"), (3 * 86400 + 4 * HOUR, "3 d 4 h")],
)
def test_elapsed_reads_like_a_person_says_it(seconds: int, said: str) -> None:
    assert elapsed(seconds) == said


def test_a_deleted_root_is_not_an_error_and_the_replies_go_on(handler: SlackAppHandler, slack: Workspace) -> None:
    send(handler, at("broken", 131))
    slack.messages.clear()  # someone deleted the root
    send(handler, at("still_failing", 132, failed=2))
    assert [m.text.split(" · ")[0] for m in slack.messages] == ["❌ still failing"]


def test_an_alert_is_a_post_of_its_own(handler: SlackAppHandler, slack: Workspace) -> None:
    send(handler, alert_event())
    [message] = slack.channel_messages("ci")
    assert message.thread_ts is None and message.blocks[0]["type"] == "header"


def test_a_delivery_keeps_the_messages_it_sent_not_the_lookups(handler: SlackAppHandler, slack: Workspace) -> None:
    """What the console shows as sent: each chat.* call with its arguments, in order."""
    with transcript.recording() as broke:
        send(handler, at("broken", 131))
    assert slack.calls["users.lookupByEmail"] == 1  # the commit author, to mention
    assert [s["to"] for s in broke.sent] == ["chat.postMessage"]
    with transcript.recording() as kept:
        send(handler, at("still_failing", 132, failed=2, hours=1))
    [root] = slack.channel_messages("ci")
    [reply] = slack.replies(root)
    assert [s["to"] for s in kept.sent] == ["chat.postMessage", "chat.update"]
    posted = json.loads(kept.sent[0]["body"])
    assert posted["thread_ts"] == root.ts and posted["text"] == reply.text
    assert json.loads(kept.sent[1]["body"])["blocks"] == root.blocks
    assert TOKEN not in str(kept.sent) and slack.calls["chat.postMessage"] == 2
