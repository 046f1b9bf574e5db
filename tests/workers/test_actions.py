"""Acting from Slack, on the worker: authorized by `actions:`, still true, once, shown in place, recorded.

Real parts: the session's Redis, the CircleCI simulator and the Slack simulator on real ports; the
click is the Slack simulator's signed block_actions payload, parsed by the web's own parser.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from service.simulators.circleci import Simulator, create_simulator
from service.simulators.slack import create_slack_simulator
from service.simulators.slack_click import DEFAULT_SIGNING_SECRET, block_actions, signed_form
from service.simulators.slack_workspace import Workspace
from service.slack_interactions import parse_click
from tests.conftest import fresh, load_fixture
from tests.server import running
from tests.workers.live_context import live_context
from workers.actions import act
from workers.events import process_event
from workers.store import EventStore

APPROVE_CALL = ("POST", "/workflow/{id}/approve/{approval_request_id}")
CANCEL_CALL = ("POST", "/workflow/{id}/cancel")
RERUN_CALL = ("POST", "/workflow/{id}/rerun")
ROUTES = """\
handlers:
  ci: {type: slack_app, token: xoxb-sim-token, channel: C0CI, api_url: "${SLACK}/api/"}
subscriptions:
  - {name: approvals, handlers: [ci], events: [approval-pending]}
  - {name: breaks, handlers: [ci], events: [workflow-completed], transitions: [broken, first_seen]}
actions:
  approve:
    - users: [U0ADA]
      projects: ["%(projects)s"]
  cancel:
    - groups: [S0RELEASE]
  rerun:
    - users: [U0ADA]
"""


class Flow:
    def __init__(self, redis_url: str, tmp_path: Path, projects: str) -> None:
        self.stack = ExitStack()
        slack_app, sim_app = create_slack_simulator(), create_circleci()
        self.workspace: Workspace = slack_app.state.workspace
        self.workspace.add_group("S0RELEASE", ["U0GRACE"])
        self.sim: Simulator = sim_app.state.simulator
        self.slack = self.stack.enter_context(running(slack_app))
        api = self.stack.enter_context(running(sim_app))
        routes = ROUTES % {"projects": projects}
        self.context, self.redis = live_context(self.stack, redis_url, tmp_path, routes, api, SLACK=self.slack)

    def approval_posted(self) -> dict[str, Any]:
        """A job-completed event revealing an approval job on hold: the notice posted; its message."""
        payload = fresh(load_fixture("job-completed.gitlab.with-workflow.derived.json"))
        served = {**payload, "workflow": {**payload["workflow"], "status": "on_hold"}}
        made = self.sim.dataset.add_workflow_from_webhook(
            served, jobs=[{"name": "say-hello", "number": 1}, {"name": "hold", "type": "approval"}]
        )
        self.workflow_id = made["workflow_id"]
        self.process(payload)
        [message] = [m for m in self.workspace.channel_messages("C0CI") if "waits for approval" in m.text]
        return {"channel": message.channel, "ts": message.ts}

    def broken_posted(self) -> dict[str, Any]:
        payload = fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json"))
        made = self.sim.dataset.add_workflow_from_webhook(
            payload, jobs=[{"name": "build"}, {"name": "test", "status": "failed"}]
        )
        self.workflow_id = made["workflow_id"]
        self.process(payload)
        [message] = self.workspace.channel_messages("C0CI")
        return {"channel": message.channel, "ts": message.ts}

    def process(self, payload: dict[str, Any]) -> None:
        payload = {**payload, "id": str(uuid.uuid4())}
        envelope = {"event_id": payload["id"], "event_type": payload["type"], "request_id": "r", "payload": payload}
        process_event(envelope)  # type: ignore[arg-type]

    def click(self, message: dict[str, Any], action: str, user: str = "U0ADA", **changes: Any) -> dict[str, Any]:
        return act(self.pressed(message, action, user, **changes))

    def pressed(self, message: dict[str, Any], action: str, user: str = "U0ADA", **changes: Any) -> dict[str, Any]:
        """What `act` is queued with after the user presses the button (the web's parse of the request)."""
        n = len(self.workspace.responses)
        payload = block_actions(
            self.workspace, channel=message["channel"], ts=message["ts"], action_id=f"circleci_events.{action}",
            user=user, team="T0SIM", response_url=f"{self.slack}/_slack/respond/{n}",
        )  # fmt: skip
        for key, value in changes.items():
            payload["actions"][0][key] = value
        body, _ = signed_form(payload, DEFAULT_SIGNING_SECRET)
        return parse_click(body) | {"request_id": f"req-{uuid.uuid4().hex[:8]}"}

    def shown(self, message: dict[str, Any]) -> Any:
        return self.workspace.find(message["channel"], message["ts"])

    def replies(self) -> list[str]:
        return [r.get("text", "") for r in self.workspace.responses]


def create_circleci() -> Any:
    return create_simulator(completion_seconds=3600)


@pytest.fixture
def flow(redis_url: str, tmp_path: Path) -> Iterator[Flow]:
    f = Flow(redis_url, tmp_path, projects="circleci/*")
    with f.stack:
        yield f


def _buttons(message: Any) -> list[str]:
    return [e["action_id"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]


def test_the_approval_notice_carries_approve_and_cancel_buttons_with_only_the_event_id(flow: Flow) -> None:
    message = flow.shown(flow.approval_posted())
    assert _buttons(message) == ["circleci_events.approve", "circleci_events.cancel"]
    values = {e["value"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"]}
    [event_id] = values
    assert EventStore(flow.redis).load(event_id)["event_type"] == "approval-pending"


def test_approve_calls_circleci_once_updates_the_message_and_records_it(flow: Flow) -> None:
    message = flow.approval_posted()
    outcome = flow.click(message, "approve")
    assert outcome["outcome"] == "done"
    assert flow.sim.call_count(*APPROVE_CALL) == 1
    shown = flow.shown(message)
    assert shown.edits == 1 and _buttons(shown) == []
    assert "Approved by <@U0ADA> at" in str(shown.blocks[-1])
    record = EventStore(flow.redis).record(str(flow.shown(message).versions[0]["blocks"][-1]["elements"][0]["value"]))
    assert record is not None
    [entry] = record["actions"]
    assert (entry["action"], entry["slack_user"], entry["outcome"], entry["circleci"]) == (
        "approve", "U0ADA", "done", "Accepted."
    )  # fmt: skip


def test_a_double_click_and_a_second_user_make_one_call(flow: Flow) -> None:
    message = flow.approval_posted()
    clicks = [flow.pressed(message, "approve") for _ in range(3)]  # pressed before the first is acted on
    outcomes = [act(click)["outcome"] for click in clicks]
    assert outcomes == ["done", "already", "already"]
    assert flow.sim.call_count(*APPROVE_CALL) == 1
    assert "<@U0ADA> already did this" in flow.replies()[-1]


def test_a_user_not_in_the_allow_list_is_refused_and_nothing_is_called(flow: Flow) -> None:
    message = flow.approval_posted()
    assert flow.click(message, "approve", user="U0EVE")["outcome"] == "refused"
    assert flow.sim.call_count(*APPROVE_CALL) == 0
    assert flow.replies() == ["You may not approve this (ask <@U0ADA>). Nothing was done."]
    assert flow.shown(message).edits == 0


def test_a_project_the_allow_list_does_not_cover_is_refused(redis_url: str, tmp_path: Path) -> None:
    f = Flow(redis_url, tmp_path, projects="github/acme/*")
    with f.stack:
        f.approval_posted()
        # no grant covers the project: the notice offers no Approve button; a forged click is refused
        message = f.shown({"channel": "C0CI", "ts": f.workspace.channel_messages("C0CI")[0].ts})
        assert "circleci_events.approve" not in _buttons(message)
        event_id = next(e["value"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"])
        forged = f.click({"channel": message.channel, "ts": message.ts}, "cancel", user="U0ADA",
                         action_id="circleci_events.approve")  # fmt: skip
        assert forged["outcome"] == "refused" and f.sim.call_count(*APPROVE_CALL) == 0
        assert event_id


def test_cancel_through_a_user_group(flow: Flow) -> None:
    message = flow.approval_posted()
    assert flow.click(message, "cancel", user="U0GRACE")["outcome"] == "done"
    assert flow.sim.call_count(*CANCEL_CALL) == 1
    assert "Workflow canceled by <@U0GRACE>" in str(flow.shown(message).blocks[-1])
    assert flow.workspace.calls["usergroups.users.list"] == 1


def test_an_approval_no_longer_on_hold_is_not_approved_and_the_message_says_why(flow: Flow) -> None:
    message = flow.approval_posted()
    for job in flow.sim.dataset.jobs[flow.workflow_id]:
        if job["type"] == "approval":
            job["status"] = "success"  # approved in CircleCI's own UI meanwhile
    assert flow.click(message, "approve")["outcome"] == "stale"
    assert flow.sim.call_count(*APPROVE_CALL) == 0
    assert "no longer waiting (it is success)" in str(flow.shown(message).blocks[-1])


def test_an_unknown_button_id_calls_nothing(flow: Flow) -> None:
    message = flow.approval_posted()
    assert flow.click(message, "approve", value=str(uuid.uuid4()))["outcome"] == "unknown"
    assert flow.sim.call_count(*APPROVE_CALL) == 0
    assert "no longer known" in flow.replies()[-1]


def test_a_circleci_refusal_is_shown_in_plain_words(flow: Flow) -> None:
    message = flow.approval_posted()
    flow.sim.add_fault(path="/workflow/*/approve/*", method="POST", status=403, body={"message": "Permission denied."})
    assert flow.click(message, "approve")["outcome"] == "circleci_refused"
    line = str(flow.shown(message).blocks[-1])
    assert "has no permission to approve" in line and "Permission denied." in line and "Traceback" not in line


def test_rerun_failed_jobs_from_a_breakage_root_once(flow: Flow) -> None:
    message = flow.broken_posted()
    assert _buttons(flow.shown(message)) == ["circleci_events.rerun"]
    clicks = [flow.pressed(message, "rerun") for _ in range(2)]
    assert [act(click)["outcome"] for click in clicks] == ["done", "already"]
    assert flow.sim.call_count(*RERUN_CALL) == 1
    line = str(flow.shown(message).blocks[-1])
    assert "Rerun by <@U0ADA> at" in line and "pipeline #" in line
