"""config/routes.example.yaml, as shipped, delivers through every handler it declares.

Real processes (web, worker), the CircleCI simulator and the chat sink; the example's
`${VAR}`s point each handler at a path on the sink (the Slack app at the Slack simulator).
Three events reach all eight handlers: a green build and then a red one on main of gh/acme/api
(the red one breaks the branch: Slack, the Slack app's thread, Teams, PagerDuty), and a deploy
job (Discord); every event goes to the audit webhook, the python callable (`builtins:print`, in
the worker's output) and the log handler.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.simulators.slack_workspace import Workspace
from tests.conftest import fresh, load_fixture
from tests.reliability.conftest import Scenario
from tests.waiting import wait_until
from workers.routes_file import load_routes

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).parents[2] / "config" / "routes.example.yaml"
PATHS = {
    "ops-slack": "/slack/ops",
    "team-channel": "/teams/ci",
    "discord-ci": "/discord/ci",
    "oncall": "/pagerduty/enqueue",
    "audit": "/hooks/audit",
}


def on_main_of_acme(payload: dict[str, Any], pipeline: int) -> dict[str, Any]:
    payload = fresh(copy.deepcopy(payload))
    payload["id"] = str(uuid.uuid4())
    payload["project"]["slug"] = "github/acme/api"
    payload["pipeline"]["id"] = str(uuid.uuid4())
    payload["pipeline"]["number"] = pipeline
    payload["pipeline"]["vcs"]["branch"] = "main"
    payload["workflow"]["id"] = str(uuid.uuid4())
    payload["workflow"]["name"] = "build-and-test"
    return payload


def test_the_example_routes_file_delivers_through_every_handler(
    scenario: Callable[..., Scenario], slack_served: tuple[str, Workspace]
) -> None:
    system = scenario()
    system.routes.write_text(EXAMPLE.read_text())
    slack_api, slack = slack_served
    slack.reset()
    env = {
        "SLACK_BOT_TOKEN": "xoxb-sim-token",
        "SLACK_API_URL": f"{slack_api}/api/",
        "SLACK_OPS_WEBHOOK": system.sink_url + PATHS["ops-slack"],
        "TEAMS_WORKFLOW_WEBHOOK": system.sink_url + PATHS["team-channel"],
        "DISCORD_WEBHOOK": system.sink_url + PATHS["discord-ci"],
        "PAGERDUTY_EVENTS_URL": system.sink_url + PATHS["oncall"],
        "PD_ROUTING_KEY": "0123456789abcdef0123456789abcdef",
        "AUDIT_WEBHOOK_URL": system.sink_url + PATHS["audit"],
        "AUDIT_SECRET": "example-audit-secret",
    }
    declared = load_routes(EXAMPLE, env).handlers
    assert {name for name, h in declared.items() if h.type not in ("python", "log", "slack_app")} == set(PATHS)
    assert all(declared[name].options["url"] == system.sink_url + path for name, path in PATHS.items())
    system.start_web(**env)
    [worker] = system.start_workers(1, **env)

    workflow = load_fixture("workflow-completed.failed.github-oauth.derived.json")
    green, red = on_main_of_acme(workflow, 7001), on_main_of_acme(workflow, 7002)
    green["workflow"]["status"] = "success"
    deploy = on_main_of_acme(load_fixture("job-completed.failed.github-oauth.derived.json"), 7003)
    deploy["job"] |= {"name": "deploy", "status": "success"}
    for payload in (green, red):
        system.simulator.dataset.add_workflow_from_webhook(payload)
    for payload in (green, red):  # in order: the red one breaks what the green one passed
        assert system.post(payload).status_code == 202
        wait_until(lambda p=payload: p["id"] in audited(system), "the audit webhook")
    assert system.post(deploy).status_code == 202

    expected = {
        "ops-slack": {red["id"]},
        "team-channel": {red["id"]},
        "oncall": {red["id"]},
        "discord-ci": {deploy["id"]},
        "audit": {green["id"], red["id"], deploy["id"]},
    }

    def arrived() -> dict[str, int]:
        return {name: len(system.sink.delivered(path)) for name, path in PATHS.items()}

    wait_until(lambda: arrived() == {k: len(v) for k, v in expected.items()}, "every handler's messages")
    [root] = wait_until(lambda: slack.channel_messages("ci"), "the Slack app's thread root")
    assert "build-and-test" in str(root.blocks)
    assert audited(system) == expected["audit"]
    assert system.sink.delivered(PATHS["oncall"])[0].body["event_action"] == "trigger"
    assert "build-and-test" in str(system.sink.delivered(PATHS["ops-slack"])[0].body)
    wait_until(lambda: worker.output().count("notification_logged") == 3, "three log notifications")
    output = worker.output()
    assert sum(e in output for e in (green["id"], red["id"], deploy["id"])) == 3  # builtins:print printed each
    assert "delivery_dead_lettered" not in output and "Traceback" not in output
    assert env["AUDIT_SECRET"] not in output and env["PD_ROUTING_KEY"] not in output


def audited(system: Scenario) -> set[str]:
    return {r.body["event_id"] for r in system.sink.delivered(PATHS["audit"])}
