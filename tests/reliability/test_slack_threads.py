"""slack_app on real processes: web, worker, redis-server, the CircleCI simulator and the Slack
simulator. A breakage is one thread from the break to the fix; a delivery retried after a killed
worker does not post a second root; Slack's permanent refusals are dead letters at once, with
what to do.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis

from service.simulators.slack import create_slack_simulator
from service.simulators.slack_workspace import Workspace
from tests.conftest import load_fixture
from tests.reliability.conftest import Scenario
from tests.server import running
from tests.waiting import wait_until
from workers.delivery.dead_letters import DeadLetters
from workers.transition import transition_key

pytestmark = pytest.mark.e2e

BOT_TOKEN = "xoxb-sim-token"
ROUTES = """\
handlers:
  ci-app:
    type: slack_app
    token: "${SLACK_BOT_TOKEN}"
    channel: "${SLACK_CHANNEL:-#ci}"
    api_url: "${SLACK_API_URL}"
people:
  octocat: {slack: U0GRACE}           # the CircleCI simulator's trigger actor
subscriptions:
  - name: breakages
    handlers: [ci-app]
    transitions: [broken, still_failing, fixed]
"""


class SlackScenario:
    """A Scenario whose routes send breakages to slack_app, at a Slack simulator of its own."""

    def __init__(self, system: Scenario, workspace: Workspace, api: str) -> None:
        self.system, self.workspace, self.api = system, workspace, api
        system.routes.write_text(ROUTES)
        workspace.add_user("U0AUTHOR", "author", "author.email@example.com")  # the fixture commit's author
        self.redis = Redis.from_url(system.redis.url)
        self.number = 100
        self.started = datetime.now(UTC) - timedelta(hours=3)

    def env(self, **extra: str) -> dict[str, str]:
        return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": f"{self.api}/api/", **extra}

    def pipeline(self, status: str) -> dict[str, Any]:
        """The next pipeline's workflow-completed payload on main, served by the CircleCI simulator."""
        self.number += 1
        payload = copy.deepcopy(load_fixture("workflow-completed.failed.github-oauth.derived.json"))
        moment = self.started + timedelta(minutes=30 * (self.number - 100))
        payload["happened_at"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload["id"], payload["workflow"]["id"], payload["pipeline"]["id"] = (str(uuid.uuid4()) for _ in range(3))
        payload["workflow"]["status"] = status
        payload["pipeline"]["number"] = self.number
        payload["pipeline"]["vcs"]["branch"] = "main"
        tests = [{"name": f"test_{i}", "result": "failure"} for i in range(3)] if status == "failed" else []
        jobs = [{"name": "build"}, {"name": "test", "status": "failed" if tests else "success", "tests": tests}]
        self.system.simulator.dataset.add_workflow_from_webhook(payload, jobs=jobs)
        return payload

    def post(self, status: str) -> dict[str, Any]:
        """Post the next pipeline and wait until its transition is recorded: events posted at once
        may be enriched in any order (a failure first would be `first_seen`, the success `stale`)."""
        payload = self.pipeline(status)
        assert self.system.post(payload).status_code == 202
        key = transition_key(payload["project"]["slug"], "main", payload["workflow"]["name"])
        recorded = lambda: self.redis.hget(key, "pipeline_number") == str(self.number).encode()  # noqa: E731
        self.until(recorded, f"pipeline #{self.number}'s transition")
        return payload

    def notify_committer(self) -> None:
        """The committer is found by the e-mail the commit claims: the opt-in this scenario needs."""
        self.system.routes.write_text(ROUTES + "    notify: committer_by_email\n")

    def roots(self) -> list[Any]:
        return self.workspace.channel_messages("ci")

    def until(self, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        try:
            return wait_until(check, what, timeout)
        except AssertionError:
            view = self.workspace.view("ci")
            raise AssertionError(f"{what}: not within {timeout} s\n{view}\n{self.system.log_text()}") from None


@pytest.fixture
def slack_scenario(scenario: Callable[..., Scenario]) -> Iterator[Callable[..., SlackScenario]]:
    with contextlib.ExitStack() as stack:

        def build(**settings: bool) -> SlackScenario:
            app = create_slack_simulator()
            api = stack.enter_context(running(app))
            return SlackScenario(scenario(**settings), app.state.workspace, api)

        yield build


def test_a_break_two_more_failures_and_the_fix_are_one_thread(slack_scenario) -> None:
    s = slack_scenario()
    s.system.start_web()
    s.system.start_workers(1, **s.env())
    s.post("success")  # the ref's first state: nothing subscribed happens
    s.post("failed")
    [root] = s.until(lambda: s.roots(), "the break's root message")
    for replies in (1, 2):
        s.post("failed")
        s.until(lambda n=replies: len(s.workspace.replies(root)) == n and root.edits == n, f"reply {replies}")
    s.post("success")
    s.until(lambda: len(s.workspace.replies(root)) == 3 and root.edits == 3, "the fix's reply and update")

    assert len(s.roots()) == 1, s.workspace.view("ci")
    replies = [r.text for r in s.workspace.replies(root)]
    assert "still failing" in replies[0] and "pipeline #103" in replies[0] and "3 failed tests" in replies[0]
    assert "pipeline #104" in replies[1]
    assert "*fixed* in" in replies[2] and "after 3 failed pipelines · 1 h 30 min" in replies[2]
    assert "failing since #102" in str(root.versions[1]["blocks"]) and "2 pipelines" in str(root.versions[1]["blocks"])
    assert "3 pipelines" in str(root.versions[2]["blocks"])
    assert root.blocks[0]["text"]["text"] == "✅ Fixed: build-test-deploy on main"


@pytest.mark.parametrize(
    ("channel", "fault", "advice"),
    [
        ("C0PRIVATE", None, "not_in_channel (the app is not a member of C0PRIVATE: invite it there"),
        ("#nowhere", None, "channel_not_found (Slack knows no channel #nowhere"),
        ("#ci", "invalid_auth", "invalid_auth (the bot token is not valid"),
    ],
)
def test_permanent_slack_errors_are_dead_letters_at_once_with_what_to_do(
    slack_scenario, channel: str, fault: str | None, advice: str
) -> None:
    s = slack_scenario()
    if fault:
        s.workspace.add_fault(method="chat.postMessage", error=fault, times=None)
    s.system.start_web()
    s.system.start_workers(1, **s.env(SLACK_CHANNEL=channel))
    s.post("success")
    payload = s.post("failed")
    letters = DeadLetters(s.redis, ttl=60)
    [letter] = s.until(lambda: letters.list(), "a dead letter")
    assert (letter.event_id, letter.reason, letter.attempts) == (payload["id"], "rejected", 1)
    assert advice in letter.body_excerpt
    assert BOT_TOKEN not in letter.body_excerpt
    assert s.workspace.calls["chat.postMessage"] == 1 and s.roots() == []


def test_the_break_mentions_its_author_by_email_lookup_and_its_trigger_actor_through_people(slack_scenario) -> None:
    s = slack_scenario()
    s.system.start_web()
    s.system.start_workers(1, **s.env())
    s.post("success")
    s.post("failed")
    [root] = s.until(lambda: s.roots(), "the break's root message")
    assert root.mentions == ["U0AUTHOR", "U0GRACE"]
    assert "<@U0AUTHOR> (commit) · <@U0GRACE> (triggered the pipeline)" in str(root.blocks)
    s.post("failed")
    s.until(lambda: len(s.workspace.replies(root)) == 1, "the reply")
    assert s.workspace.replies(root)[0].mentions == []
    assert s.workspace.calls["users.lookupByEmail"] == 1


def test_a_worker_killed_after_the_root_was_posted_does_not_post_a_second_one(slack_scenario) -> None:
    """The kill point is chosen: the root is posted and recorded, the worker is waiting for Slack
    to open the direct message to the committer. The job runs again on a live worker, finds the
    root and sends only the direct message."""
    s = slack_scenario()
    s.notify_committer()
    s.system.start_web()
    [worker] = s.system.start_workers(1, **s.env())
    s.post("success")
    slow = s.workspace.add_fault(method="conversations.open", delay=30, times=None)
    s.post("failed")
    s.until(lambda: slow.fired >= 1, "the direct message being opened after the root")
    [root] = s.roots()
    s.system.kill(worker)
    s.workspace.faults.clear()
    s.system.start_workers(1, **s.env())
    [dm] = s.until(lambda: s.workspace.channel_messages("U0AUTHOR"), "the direct message, from the job run again")
    assert s.roots() == [root], s.workspace.view("ci")
    assert "broke on main" in dm.text and "/archives/C0CI/p" in dm.text
    assert s.workspace.calls["chat.postMessage"] == 2  # the root once, the direct message once
