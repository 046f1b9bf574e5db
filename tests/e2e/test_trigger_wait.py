"""`api trigger --wait` finishes from the webhook event, through real web and worker processes."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
import uuid

import httpx
import redis

from service.simulators.circleci import create_simulator
from service.simulators.circleci_data import Dataset
from tests.conftest import fresh, load_fixture
from tests.server import running
from tests.service.conftest import signed
from tests.waiting import wait_until

PAYLOAD = fresh(load_fixture("workflow-completed.failed.github-oauth.derived.json"))
SLUG = PAYLOAD["project"]["slug"]
WORKFLOWS_OF_PIPELINE = ("GET", "/pipeline/{pipeline-id}/workflow")


def start_trigger(env: dict[str, str]) -> tuple[subprocess.Popen[str], str, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "api", "trigger", SLUG, "--branch", "main", "--wait", "--timeout", "60"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"pipeline (\d+) \(([0-9a-f-]+)\) created", line)
    assert found, line
    return process, found.group(2), int(found.group(1))


def workflow_of(pipeline_id: str, number: int, status: str) -> dict:
    payload = copy.deepcopy(PAYLOAD)
    payload["id"] = str(uuid.uuid4())
    payload["pipeline"].update(id=pipeline_id, number=number)
    payload["workflow"].update(id=str(uuid.uuid4()), status=status)
    return payload


def wait_subscribed(redis_url: str, pipeline_id: str) -> None:
    client = redis.Redis.from_url(redis_url)
    channel = f"cie:pipeline:{pipeline_id}"
    wait_until(lambda: dict(client.pubsub_numsub(channel)).get(channel.encode()) == 1, "the CLI subscribed")


def test_trigger_wait_ends_on_the_webhook_event_without_polling(redis_url, web_factory, worker_factory) -> None:
    app = create_simulator(Dataset.example())
    sim = app.state.simulator
    with running(app) as base:
        env = {"REDIS_URL": redis_url, "CIRCLE_TOKEN": "sim-token", "CIRCLECI_API_URL": base + "/api/v2"}
        _, web = web_factory(redis_url, **env)
        worker_factory(redis_url, **env)
        process, pipeline_id, number = start_trigger(env)
        wait_subscribed(redis_url, pipeline_id)
        assert sim.call_count(*WORKFLOWS_OF_PIPELINE) == 0

        payload = workflow_of(pipeline_id, number, "failed")
        sim.dataset.add_workflow_from_webhook(payload, [{"name": "test", "status": "failed"}])
        assert httpx.post(web + "/webhooks/circleci", **signed(payload)).status_code == 202
        out, err = process.communicate(timeout=60)

    assert process.returncode == 1, err  # the workflow failed
    assert re.search(rf"{PAYLOAD['workflow']['name']}\s+failed", out), out
    assert "Traceback" not in err
    assert sim.call_count(*WORKFLOWS_OF_PIPELINE) == 1  # one look after the event; no polling


def test_trigger_wait_falls_back_to_polling_when_no_event_arrives(redis_url) -> None:
    app = create_simulator(Dataset.example())
    sim = app.state.simulator
    with running(app) as base:
        env = {"REDIS_URL": redis_url, "CIRCLE_TOKEN": "sim-token", "CIRCLECI_API_URL": base + "/api/v2"}
        started = time.monotonic()
        process, pipeline_id, number = start_trigger(env)
        sim.dataset.add_workflow_from_webhook(workflow_of(pipeline_id, number, "success"), [{"name": "build"}])
        out, err = process.communicate(timeout=60)
        took = time.monotonic() - started

    assert process.returncode == 0, err
    assert re.search(rf"{PAYLOAD['workflow']['name']}\s+success", out), out
    assert sim.call_count(*WORKFLOWS_OF_PIPELINE) == 1
    assert took >= 15  # the first poll waits 15 s of silence: never a tight loop
