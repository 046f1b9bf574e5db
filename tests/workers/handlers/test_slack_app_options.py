"""slack_app and what the routes file asks of it: mentions on a break's root (`people:` first,
else users.lookupByEmail, cached in Redis, misses too; never on replies; off per subscription), a
direct message with `notify: committer`, job events in the thread with `job_replies: true`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fakeredis
import pytest
from structlog.testing import capture_logs

from service.simulators.slack_workspace import Workspace
from tests.workers.handlers.test_slack_app import TOKEN, at, send
from workers.handlers import build_handlers
from workers.handlers.base import HandlerContext
from workers.handlers.slack_app import SlackAppHandler
from workers.routes_file import load_routes

ROUTES = """\
handlers:
  ci-app: {{type: slack_app, token: "{token}", channel: "#ci", api_url: "{api}/api/"}}
people:
  "Ada@Example.com": {{slack: U0ADA}}
  grace-gh: {{slack: U0GRACE, name: Grace}}
subscriptions:
  - name: breaks
    handlers: [ci-app]
{extra}
"""


@pytest.fixture
def slack(slack_served: tuple[str, Workspace]) -> Workspace:
    slack_served[1].reset()
    return slack_served[1]


@pytest.fixture
def build(slack_served: tuple[str, Workspace], tmp_path: Path):
    redis = fakeredis.FakeRedis()

    def make(extra: str = "") -> SlackAppHandler:
        path = tmp_path / "routes.yaml"
        path.write_text(ROUTES.format(token=TOKEN, api=slack_served[0], extra=extra))
        routes = load_routes(path, {})
        handler = build_handlers(routes, HandlerContext(redis=redis, routes=routes, timeout_seconds=2))["ci-app"]
        assert isinstance(handler, SlackAppHandler)
        return handler

    return make


def broken(author_email: str = "ada@example.com", actor: str | None = "grace-gh", **more: Any) -> dict[str, Any]:
    event = at("broken", more.pop("number", 131), **more)
    event["vcs"]["author_email"] = author_email
    event["pipeline"]["trigger_actor"] = actor
    return event


def test_the_break_mentions_the_author_and_the_trigger_actor_through_people(build, slack: Workspace) -> None:
    send(build(), broken())
    [root] = slack.channel_messages("ci")
    assert root.mentions == ["U0ADA", "U0GRACE"]
    assert root.text.startswith("<@U0ADA> <@U0GRACE> ")
    assert root.blocks[1]["text"]["text"] == "👋 <@U0ADA> (commit) · <@U0GRACE> (triggered the pipeline)"
    assert slack.calls["users.lookupByEmail"] == 0


def test_an_author_not_in_people_is_looked_up_by_email_once(build, slack: Workspace) -> None:
    handler = build()
    send(handler, broken("grace@example.com", actor=None))
    send(handler, at("fixed", 132))
    send(handler, broken("grace@example.com", actor=None, number=140, since=140))
    first, second = slack.channel_messages("ci")
    assert first.mentions == second.mentions == ["U0GRACE"]
    assert slack.calls["users.lookupByEmail"] == 1  # the second break found it in Redis


def test_a_miss_is_cached_too(build, slack: Workspace) -> None:
    handler = build()
    send(handler, broken("nobody@example.com", actor=None))
    send(handler, at("fixed", 132))
    send(handler, broken("nobody@example.com", actor=None, number=140, since=140))
    assert all(m.mentions == [] for m in slack.channel_messages("ci"))
    assert slack.calls["users.lookupByEmail"] == 1


def test_co_authors_are_mentioned_too(build, slack: Workspace) -> None:
    event = broken(actor=None)
    event["vcs"]["commit_body"] = "Pairing.\n\nCo-authored-by: Grace Hopper <grace@example.com>\n"
    send(build(), event)
    assert slack.channel_messages("ci")[0].mentions == ["U0ADA", "U0GRACE"]


def test_replies_and_root_updates_mention_no_one_new(build, slack: Workspace) -> None:
    handler = build()
    send(handler, broken())
    send(handler, at("still_failing", 132, failed=2))
    [root] = slack.channel_messages("ci")
    [reply] = slack.replies(root)
    assert reply.mentions == [] and "<@" not in reply.text
    assert root.mentions == ["U0ADA", "U0GRACE"]  # the update keeps the break's own line


def test_a_subscription_can_turn_mentions_off(build, slack: Workspace) -> None:
    send(build("    mentions: false"), broken())
    assert slack.channel_messages("ci")[0].mentions == []
    assert slack.calls["users.lookupByEmail"] == 0


def test_a_refused_lookup_posts_without_that_mention_and_says_why(build, slack: Workspace) -> None:
    slack.add_fault(method="users.lookupByEmail", error="missing_scope")
    with capture_logs() as logs:
        send(build(), broken("grace@example.com", actor="grace-gh"))
    assert slack.channel_messages("ci")[0].mentions == ["U0GRACE"]  # through people, as the trigger actor
    [refused] = [line for line in logs if line["event"] == "slack_lookup_refused"]
    assert "missing_scope" in refused["error"] and "users:read.email" in refused["error"]


def test_notify_committer_sends_a_direct_message_once(build, slack: Workspace) -> None:
    handler = build("    notify: committer")
    event = broken()
    send(handler, event)
    send(handler, event)  # a retried delivery
    [dm] = slack.channel_messages("U0ADA")
    assert "broke on main" in dm.text and "|the thread>" in dm.text
    assert dm.text.count("https://simulated.slack.com/archives/C0CI/p") == 1
    assert slack.calls["conversations.open"] == 1


def test_a_direct_message_that_failed_is_sent_by_the_retry_without_a_second_root(build, slack: Workspace) -> None:
    handler = build("    notify: committer")
    slack.add_fault(method="conversations.open", error="ratelimited", retry_after=1)
    with pytest.raises(Exception, match="ratelimited"):
        send(handler, broken())
    send(handler, broken())
    assert len(slack.channel_messages("ci")) == 1 and len(slack.channel_messages("U0ADA")) == 1


def test_preview_shows_the_mentions_and_the_direct_message(build) -> None:
    calls = build("    notify: committer").render(broken())["calls"]
    assert [c["method"] for c in calls] == ["chat.postMessage", "conversations.open", "chat.postMessage"]
    assert calls[0]["text"].startswith("<@U0ADA> <@U0GRACE>") and calls[1]["users"] == "U0ADA"


def job_event(number: int = 133) -> dict[str, Any]:
    event = at("still_failing", number)
    event |= {"event_id": f"job-{number}", "event_type": "job-completed", "transition": None}
    event["job"] = {"name": "test", "status": "failed", "web_url": "https://app.circleci.test/jobs/7"}
    return event


def test_job_events_reply_in_the_open_thread_with_job_replies(build, slack: Workspace) -> None:
    handler = build("    job_replies: true")
    send(handler, broken())
    send(handler, job_event())
    send(handler, job_event())  # retried: replied once
    [root] = slack.channel_messages("ci")
    [reply] = slack.replies(root)
    assert reply.text.startswith("❌ job <https://app.circleci.test/jobs/7|test> failed · pipeline #133")
    send(handler, at("fixed", 134))
    send(handler, job_event(135))  # the breakage is over: a post of its own
    assert len(slack.channel_messages("ci")) == 2


def test_without_job_replies_a_job_event_is_a_post_of_its_own(build, slack: Workspace) -> None:
    handler = build()
    send(handler, broken())
    send(handler, job_event())
    assert len(slack.channel_messages("ci")) == 2


def co_authored(count: int) -> dict[str, Any]:
    event = broken(actor=None)
    trailers = "".join(f"Co-authored-by: Person {n} <p{n}@example.com>\n" for n in range(count))
    event["vcs"]["commit_body"] = "Many hands.\n\n" + trailers
    return event


def test_commit_data_cannot_make_one_event_ping_or_look_up_everyone(build, slack: Workspace) -> None:
    """300 `Co-authored-by:` trailers: at most 20 look-ups and 10 people (issue 23 item 2)."""
    for n in range(80):
        slack.add_user(f"U0P{n}", f"person{n}", f"p{n}@example.com")
    with capture_logs() as logs:
        send(build(), co_authored(300))
    [root] = slack.channel_messages("ci")
    assert len(root.mentions) == 10 and root.mentions[0] == "U0ADA"
    assert slack.calls["users.lookupByEmail"] <= 20
    assert [line["skipped"] for line in logs if line["event"] == "mentions_capped"] == [291]


def test_a_direct_message_goes_only_to_someone_people_names(build, slack: Workspace) -> None:
    """The commit claims grace@example.com as its author; `people:` lists Grace by login only."""
    send(build("    notify: committer"), broken("grace@example.com", actor=None))
    assert slack.channel_messages("ci")[0].mentions == ["U0GRACE"]  # mentioned, through the look-up
    assert slack.channel_messages("U0GRACE") == [] and slack.calls["conversations.open"] == 0


def test_notify_committer_by_email_opts_in_to_looked_up_authors(build, slack: Workspace) -> None:
    send(build("    notify: committer_by_email"), broken("grace@example.com", actor=None))
    assert len(slack.channel_messages("U0GRACE")) == 1
