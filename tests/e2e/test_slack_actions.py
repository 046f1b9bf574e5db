"""Approve from the thread, on real processes: `circleci-events web` and `worker`, the CircleCI and
Slack simulators on real ports. A job-completed webhook reveals an approval on hold; the notice
is posted with its buttons; the Slack simulator clicks Approve (a signed block_actions request to
the web); CircleCI sees exactly one approve call; the message shows who approved.

Prints the click -> CircleCI call latency of each run (median [min-max]); asserts no speed.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from service.signature import sign
from service.simulators.circleci import Simulator, create_simulator
from service.simulators.slack import create_slack_simulator
from service.simulators.slack_workspace import Workspace
from tests.conftest import SECRET, fresh, load_fixture
from tests.server import running

APPROVE = "POST /workflow/{id}/approve/{approval_request_id}"
SIGNING_SECRET, TEAM = "e2e-slack-signing-secret", "T0E2E"
ROUTES = """\
handlers:
  ci: {type: slack_app, token: xoxb-sim-token, channel: C0CI, api_url: "${SLACK_API}"}
subscriptions:
  - {name: approvals, handlers: [ci], events: [approval-pending]}
actions:
  approve:
    - users: [U0ADA]
"""
RUNS = 5
DEADLINE = 120.0  # generous: the machine may be busy


def _wait(what: str, check: Any, timeout: float = DEADLINE, every: float = 0.002) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


def _deliver(web: str, sim: Simulator) -> str:
    """A job-completed webhook whose workflow waits on `hold`; the workflow id."""
    payload = fresh(load_fixture("job-completed.gitlab.with-workflow.derived.json"))
    workflow_id, pipeline_id = str(uuid.uuid4()), str(uuid.uuid4())
    payload |= {"id": str(uuid.uuid4()), "workflow": {**payload["workflow"], "id": workflow_id},
                "pipeline": {**payload["pipeline"], "id": pipeline_id}}  # fmt: skip
    served = {**payload, "workflow": {**payload["workflow"], "status": "on_hold"}}
    sim.dataset.add_workflow_from_webhook(served, jobs=[{"name": "say-hello"}, {"name": "hold", "type": "approval"}])
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "circleci-signature": sign(body, SECRET),
               "circleci-event-type": "job-completed"}  # fmt: skip
    assert httpx.post(f"{web}/webhooks/circleci", content=body, headers=headers, timeout=10).status_code == 202
    return workflow_id


def _approve_once(web: str, slack: str, workspace: Workspace, sim: Simulator, run: int) -> tuple[float, float]:
    """Deliver, wait for the notice, double-click Approve; seconds from the click to the approve
    call, and to the web's answer (through the Slack simulator, so an upper bound)."""
    _deliver(web, sim)
    message = _wait("the approval notice", lambda: [
        m for m in workspace.channel_messages("C0CI") if "waits for approval" in m.text and m.edits == 0
    ])[0]  # fmt: skip
    path = APPROVE.split(" ", 1)[1]
    before = sim.call_count("POST", path)
    click = {
        "url": f"{web}/slack/interactions",
        "channel": message.channel,
        "ts": message.ts,
        "action_id": "circleci_events.approve",
        "user": "U0ADA",
        "team": TEAM,
        "clicks": 2,
    }  # a double click
    answers: list[Any] = []
    answered: list[float] = []

    def press() -> None:
        answers.append(httpx.post(f"{slack}/_slack/click", json=click, timeout=30).json())
        answered.append(time.monotonic() - started)

    pressing = threading.Thread(target=press)
    started = time.monotonic()
    pressing.start()
    _wait("the approve call", lambda: sim.call_count("POST", path) > before)
    latency = sim.called_at[APPROVE] - started
    pressing.join(timeout=30)
    assert [a.get("statuses") for a in answers] == [[200, 200]], answers
    _wait("the message updated", lambda: workspace.find(message.channel, message.ts).edits >= 1)
    shown = workspace.find(message.channel, message.ts)
    assert "Approved by <@U0ADA> at" in json.dumps(shown.blocks)
    assert not [b for b in shown.blocks if b.get("type") == "actions"]
    time.sleep(0.5)  # room for a second call to show, were there one
    assert sim.call_count("POST", path) == before + 1, f"run {run}: more than one approve call"
    return latency, min(answered)


def test_approve_from_slack_makes_one_circleci_call_and_updates_the_message(
    redis_url: str, tmp_path: Path, web_factory: Any, worker_factory: Any
) -> None:
    slack_app = create_slack_simulator(signing_secret=SIGNING_SECRET, team_id=TEAM)
    workspace: Workspace = slack_app.state.workspace
    sim_app = create_simulator(completion_seconds=3600)
    sim: Simulator = sim_app.state.simulator
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    with running(slack_app) as slack, running(sim_app) as api:
        _, web = web_factory(redis_url, SLACK_SIGNING_SECRET=f"old-secret,{SIGNING_SECRET}", SLACK_TEAM_ID=TEAM)
        worker_factory(redis_url, ROUTES_FILE=str(routes), SLACK_API=f"{slack}/api/", CIRCLE_TOKEN="sim-token",
                       CIRCLECI_API_URL=f"{api}/api/v2", WORKERS="1")  # fmt: skip
        runs = [_approve_once(web, slack, workspace, sim, run) for run in range(RUNS)]
    for label, seconds in (("CircleCI approve call", [r[0] for r in runs]), ("the web's 200", [r[1] for r in runs])):
        ms = sorted(round(s * 1000, 1) for s in seconds)
        print(f"\nclick -> {label}: p50 {statistics.median(ms)} ms [{ms[0]}-{ms[-1]}] over {RUNS} runs")
