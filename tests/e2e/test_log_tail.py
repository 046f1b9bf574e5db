"""What broke, on real processes: uvicorn, an RQ worker, the CircleCI simulator (API v1.1 and its
storage route) and the chat sink. A failed docker build's log tail reaches the chat, escaped and
masked, the token never reaches the storage host, and a `log_tail: false` channel sees no log."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable

import pytest

from tests.conftest import fresh, load_fixture
from tests.reliability.conftest import Scenario, wait_until

pytestmark = pytest.mark.e2e

ROUTES = """\
handlers:
  ops: {type: slack, url: "${SINK_URL}/slack/ops"}
  public: {type: slack, url: "${SINK_URL}/slack/public", log_tail: false}
  audit: {type: webhook, url: "${SINK_URL}/hooks/audit", secret: "${HOOK_SECRET}"}
subscriptions:
  - {name: failures, handlers: [ops, public, audit], statuses: [failed]}
"""
SECRET_IN_LOG = "ghp_" + "Q" * 36
DOCKER_LOG = [
    "\x1b[1m#8 [4/5] RUN pip install -r requirements.txt\x1b[0m\r\n",
    "#8 2.301 Downloading 12%\r#8 2.301 Downloading 100%\r\n",
    f"#8 3.000 using GITHUB_TOKEN={SECRET_IN_LOG}\r\n",
    "#8 4.118 <!channel> \x1b[31merror: pg_config executable not found.\x1b[0m\r\n",
    "ERROR: failed to solve: exit code: 1\r\n",
]


def test_a_failed_docker_builds_log_tail_reaches_the_chat(scenario: Callable[..., Scenario]) -> None:
    system = scenario()
    system.routes.write_text(ROUTES)
    payload = load_fixture("workflow-completed.failed.github-oauth.derived.json")
    payload = fresh(copy.deepcopy(payload)) | {"id": str(uuid.uuid4())}  # fresh: stamped now
    steps = [
        {"name": "Checkout code", "output": "ok\r\n"},
        {"name": "docker build", "status": "failed", "exit_code": 1, "output": DOCKER_LOG},
    ]
    system.simulator.dataset.add_workflow_from_webhook(
        payload, [{"name": "build-image", "status": "failed", "tests": [], "steps": steps}]
    )
    system.start_web()
    system.start_workers(1)
    assert system.post(payload).status_code == 202

    wait_until(lambda: len(system.sink.delivered("/slack/public")) == 1, "the messages", timeout=60)
    wait_until(lambda: len(system.sink.delivered("/slack/ops")) == 1, "the messages", timeout=60)
    [ops] = system.sink.delivered("/slack/ops")
    section = next(b["text"]["text"] for b in ops.body["blocks"] if "Failed step" in b.get("text", {}).get("text", ""))
    assert section.startswith("*Failed step* `docker build` in build-image · exit 1\n```\n")
    assert "#8 2.301 Downloading 100%\n" in section and "\x1b" not in section  # redraws and colours gone
    assert "&lt;!channel&gt; error: pg_config executable not found." in section and "<!channel>" not in section
    assert SECRET_IN_LOG not in str(ops.body) and "GITHUB_TOKEN=[masked]" in section

    [public] = system.sink.delivered("/slack/public")
    assert "docker build" in str(public.body) and "pg_config" not in str(public.body)
    wait_until(lambda: len(system.sink.delivered("/hooks/audit")) == 1, "the webhook", timeout=30)
    [audit] = system.sink.delivered("/hooks/audit")
    assert audit.body["failed_jobs"][0]["failed_step"]["log_tail"].endswith("ERROR: failed to solve: exit code: 1")
    assert audit.body["enrichment"]["api_calls"] >= 3  # the job page, the v1.1 job, its output, …
    assert system.simulator.tokens_at_storage == 0  # the storage route refuses a token: none was sent
    assert system.simulator.call_count("GET", "/_sim/storage/output/{key}") == 1
