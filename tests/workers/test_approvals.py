"""The derived approval-pending event: revealed by a job-completed event, announced once, routable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from service.simulators.circleci import Simulator, create_simulator
from service.simulators.sink import Sink, create_sink
from tests.conftest import fresh, load_fixture
from tests.server import running
from tests.workers.live_context import live_context
from workers.approvals import derived_event_id
from workers.events import process_event
from workers.store import EventStore

JOBS_CALL = ("GET", "/workflow/{id}/job")
LISTENING = """\
handlers:
  ops: {type: slack, url: "${SINK}/slack/ops"}
subscriptions:
  - {name: approvals, handlers: [ops], events: [approval-pending], branches: [main]}
"""
NOT_LISTENING = """\
handlers:
  ops: {type: slack, url: "${SINK}/slack/ops"}
subscriptions:
  - {name: everything, handlers: [ops]}
"""


class Approvals:
    """A worker context over a CircleCI simulator and a chat sink, with a routes file."""

    def __init__(self, redis_url: str, tmp_path: Path, routes: str) -> None:
        self.stack = ExitStack()
        sink_app, sim_app = create_sink(), create_simulator()
        self.sink: Sink = sink_app.state.sink
        self.sim: Simulator = sim_app.state.simulator
        sink, api = self.stack.enter_context(running(sink_app)), self.stack.enter_context(running(sim_app))
        self.context, self.redis = live_context(self.stack, redis_url, tmp_path, routes, api, SINK=sink)

    def workflow(self, approval_status: str = "on_hold") -> dict[str, Any]:
        """A job-completed payload (branch main) whose workflow waits on the approval job `hold`."""
        payload = fresh(load_fixture("job-completed.gitlab.with-workflow.derived.json"))
        served = {**payload, "workflow": {**payload["workflow"], "status": "on_hold"}}
        made = self.sim.dataset.add_workflow_from_webhook(
            served, jobs=[{"name": "say-hello", "number": 1}, {"name": "hold", "type": "approval",
                                                                 "status": approval_status}]
        )  # fmt: skip
        self.approval = next(j for j in made["jobs"] if j["type"] == "approval")
        return payload

    def process(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload = {**payload, "id": str(uuid.uuid4())}
        envelope = {"event_id": payload["id"], "event_type": payload["type"], "request_id": "r", "payload": payload}
        return process_event(envelope)  # type: ignore[arg-type]


@pytest.fixture
def listening(redis_url: str, tmp_path: Path) -> Iterator[Approvals]:
    flow = Approvals(redis_url, tmp_path, LISTENING)
    with flow.stack:
        yield flow


@pytest.fixture
def not_listening(redis_url: str, tmp_path: Path) -> Iterator[Approvals]:
    flow = Approvals(redis_url, tmp_path, NOT_LISTENING)
    with flow.stack:
        yield flow


def test_a_job_completed_event_whose_workflow_waits_on_an_approval_posts_one_notice(listening: Approvals) -> None:
    payload = listening.workflow()
    listening.process(payload)
    posted = listening.sink.delivered("/slack/ops")
    assert len(posted) == 1
    text = posted[0].body["text"]
    assert "build waits for approval: hold" in text
    assert "Update README.md" in text  # the commit
    assert payload["workflow"]["url"] in text
    stored = EventStore(listening.redis).load(derived_event_id(listening.approval["approval_request_id"]))
    assert stored is not None and stored["event_type"] == "approval-pending"
    assert stored["approval"]["workflow_id"] == payload["workflow"]["id"]


def test_a_second_job_completed_seeing_the_same_request_does_not_notify_again(listening: Approvals) -> None:
    payload = listening.workflow()
    listening.process(payload)
    listening.process(payload)
    assert len(listening.sink.delivered("/slack/ops")) == 1


def test_an_approval_already_given_is_not_announced(listening: Approvals) -> None:
    listening.process(listening.workflow(approval_status="success"))
    assert listening.sink.delivered("/slack/ops") == []


def test_without_a_subscription_naming_it_no_call_is_made_and_nothing_is_derived(not_listening: Approvals) -> None:
    not_listening.process(not_listening.workflow())
    assert not_listening.sim.call_count(*JOBS_CALL) == 0
    bodies = [r.body["text"] for r in not_listening.sink.delivered("/slack/ops")]
    assert len(bodies) == 1 and "waits for approval" not in bodies[0]  # the job-completed event alone
