"""What `circleci-events demo` sends and shows: four workflows on main, the routes, the printout,
then a deploy workflow waiting on an approval job, approved from its Slack message.

The events come from the webhook samples shipped with the package (service/simulators/samples):
a success, a failure (failed tests, one of them a known flake, and a docker build whose failing
step and log tail the message shows), another failure, then the fix on a newer
pipeline, so the transitions read first_seen, broken, still_failing, fixed. Each workflow is
loaded into the simulator with its jobs first, so enrichment finds them. A `slack_app` handler
at the Slack simulator keeps the breakage in one thread, mentioning its author (found by e-mail)
and the pipeline's trigger actor (through `people:`).
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.cli.message_view import message_lines

SUCCESS_FIXTURE = "workflow-completed.github-oauth.docs.json"
FAILED_FIXTURE = "workflow-completed.failed.github-oauth.derived.json"
FAILING_TESTS = {
    "test_new_endpoint_validates_input": "AssertionError: expected 422, got 500",
    "test_new_endpoint_rejects_unknown_fields": "KeyError: 'extra'",
}
# Insights knows this one to flake: the message marks it
KNOWN_FLAKY = {"test_name": "test_new_endpoint_rejects_unknown_fields", "classname": "tests.test_api",
               "job_name": "test", "times_flaked": 7}  # fmt: skip
# what a failed `docker build` step prints, as CircleCI records it: colours, \r\n, redrawn progress
DOCKER_OUTPUT = [
    "\x1b[1m#7 [3/5] COPY requirements.txt .\x1b[0m\r\n",
    "#8 [4/5] RUN pip install -r requirements.txt\r\n",
    "#8 1.912 Collecting psycopg2==2.9.9\r\n#8 2.301 Downloading 12%\r#8 2.301 Downloading 100%\r\n",
    "#8 4.118 \x1b[31merror: pg_config executable not found.\x1b[0m\r\n",
    "#8 4.120 ERROR: Failed building wheel for psycopg2\r\n",
    '\x1b[31mERROR: failed to solve: process "/bin/sh -c pip install -r requirements.txt" '
    "did not complete successfully: exit code: 1\x1b[0m\r\n",
    "\nExited with code exit status 1\n",
]
WEBHOOK_SECRET_VAR = "DEMO_WEBHOOK_SECRET"
SLACK_TOKEN_VAR = "DEMO_SLACK_BOT_TOKEN"
TRIGGER_ACTOR = "octocat"  # who the CircleCI simulator says triggered every pipeline
# the failure sample's commit author, a member of the simulated Slack workspace: found by e-mail
AUTHOR = {"id": "U0AUTHOR", "name": "author", "email": "author.email@example.com"}
APPROVER = "U0ADA"  # may approve (the routes file's `actions:`); the demo clicks Approve as her


def approval_scenario(fixtures: Path) -> Scenario:
    """A deploy workflow's build job completed; the workflow now waits on the approval job `hold-for-deploy`."""
    success = json.loads((fixtures / SUCCESS_FIXTURE).read_text())
    payload = _event(success, number=134, subject="Release the new endpoint", stopped=datetime.now(UTC))
    workflow = payload["workflow"]
    workflow["name"], workflow["status"] = "deploy", "on_hold"
    job = {"id": str(uuid.uuid4()), "name": "build", "number": 1340, "status": "success",
           "started_at": workflow["created_at"], "stopped_at": payload["happened_at"]}  # fmt: skip
    payload |= {"type": "job-completed", "job": job}
    jobs = [{"name": "build", "status": "success", "number": 1340, "id": job["id"]},
            {"name": "hold-for-deploy", "type": "approval"}]  # fmt: skip
    return Scenario("a deploy waiting for approval", payload, jobs)


@dataclass(frozen=True)
class Scenario:
    title: str
    payload: dict[str, Any]
    jobs: list[dict[str, Any]]


def _passing_jobs() -> list[dict[str, Any]]:
    return [
        {"name": "build", "status": "success"},
        {"name": "test", "status": "success", "tests": [{"name": "test_health_endpoint", "result": "success"}]},
    ]


def _failing_jobs() -> list[dict[str, Any]]:
    tests = [{"name": "test_health_endpoint", "result": "success"}]
    tests += [{"name": name, "result": "failure", "message": message} for name, message in FAILING_TESTS.items()]
    tests = [{**t, "classname": "tests.test_api"} for t in tests]
    steps = [
        {"name": "Checkout code", "output": "Cloning git repository\r\n"},
        {"name": "Setup a remote Docker engine", "output": "Allocating a remote Docker engine\r\n"},
        {"name": "docker build", "status": "failed", "exit_code": 1, "output": DOCKER_OUTPUT},
    ]
    return [
        {"name": "build", "status": "success"},
        {"name": "test", "status": "failed", "tests": tests, "artifacts": ["test-results/junit.xml"]},
        {"name": "build-image", "status": "failed", "tests": [], "steps": steps},
    ]


def _event(template: dict[str, Any], *, number: int, subject: str, stopped: datetime) -> dict[str, Any]:
    """The fixture as a new delivery on main: new ids, pipeline `number`, times around `stopped`."""
    payload = copy.deepcopy(template)
    workflow, pipeline = payload["workflow"], payload["pipeline"]
    payload["id"] = str(uuid.uuid4())
    workflow["id"], pipeline["id"], pipeline["number"] = str(uuid.uuid4()), str(uuid.uuid4()), number
    slug = payload["project"]["slug"]
    workflow["url"] = f"https://app.circleci.com/pipelines/{slug}/{number}/workflows/{workflow['id']}"
    created = stopped - timedelta(minutes=3, seconds=41)
    payload["happened_at"] = workflow["stopped_at"] = _iso(stopped)
    workflow["created_at"] = pipeline["created_at"] = _iso(created)
    pipeline["vcs"]["branch"] = "main"
    pipeline["vcs"]["revision"] = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    pipeline["vcs"]["commit"]["subject"] = subject
    return payload


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def scenarios(fixtures: Path) -> list[Scenario]:
    """The four deliveries, oldest first."""
    success = json.loads((fixtures / SUCCESS_FIXTURE).read_text())
    failed = json.loads((fixtures / FAILED_FIXTURE).read_text())
    now = datetime.now(UTC)
    return [
        Scenario(
            "a success on main",
            _event(success, number=130, subject="Add the health endpoint", stopped=now - timedelta(minutes=20)),
            _passing_jobs(),
        ),
        Scenario(
            "a failure with failed tests",
            _event(failed, number=131, subject="Add new endpoint", stopped=now - timedelta(minutes=10)),
            _failing_jobs(),
        ),
        Scenario(
            "still failing",
            _event(failed, number=132, subject="Log the new endpoint's errors", stopped=now - timedelta(minutes=5)),
            _failing_jobs(),
        ),
        Scenario(
            "the fix, on a newer pipeline",
            _event(success, number=133, subject="Validate the new endpoint's input", stopped=now),
            _passing_jobs(),
        ),
    ]


def routes_yaml(sink_url: str, slack_api_url: str) -> str:
    """A routes file: every workflow event to a Slack handler, a webhook handler (both at the sink)
    and a log; the breakage to a Slack app at the Slack simulator, in one thread."""
    return (
        "handlers:\n"
        f"  demo-slack: {{type: slack, url: '{sink_url}/slack/demo'}}\n"
        f"  demo-webhook: {{type: webhook, url: '{sink_url}/webhook/demo', secret: '${{{WEBHOOK_SECRET_VAR}}}'}}\n"
        "  demo-log: {type: log}\n"
        f"  demo-thread: {{type: slack_app, token: '${{{SLACK_TOKEN_VAR}}}', channel: '#ci',"
        f" api_url: '{slack_api_url}'}}\n"
        "people:\n"
        f"  {TRIGGER_ACTOR}: {{slack: U0GRACE}}\n"
        "subscriptions:\n"
        "  - name: everything\n"
        "    handlers: [demo-slack, demo-webhook, demo-log]\n"
        "  - name: breakage-thread\n"
        "    handlers: [demo-thread]\n"
        "    transitions: [broken, still_failing, fixed]\n"
        "  - name: approvals\n"
        "    handlers: [demo-thread]\n"
        "    events: [approval-pending]\n"
        "actions:\n"
        f"  approve:\n    - users: [{APPROVER}]\n"
    )


def describe(number: int, scenario: Scenario, slack: dict[str, Any], webhook: dict[str, Any]) -> list[str]:
    """What the sink received for one event, as lines to print."""
    transition = webhook.get("transition") or {}
    previous = transition.get("previous_status")
    since = f" (previous: {previous} #{transition.get('previous_pipeline_number')})" if previous else ""
    enrichment = webhook.get("enrichment") or {}
    lines = [
        f"── {number}. {scenario.title}: pipeline #{scenario.payload['pipeline']['number']} ──",
        f"transition   {transition.get('kind')}{since}",
        f"webhook      status {webhook.get('status')} · enrichment "
        f"{'complete' if enrichment.get('complete') else 'incomplete'}, {enrichment.get('api_calls')} API call(s)",
    ]
    return [*lines, *message_lines("slack", slack)]
