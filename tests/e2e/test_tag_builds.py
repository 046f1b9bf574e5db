"""A GitHub OAuth tag build end to end: web, worker, CircleCI simulator and chat sink as processes.

Real tag-build webhooks say `branch: null`, no tag and null commit fields; the worker asks
`GET /pipeline/{id}` for the tag, so a `tags:` subscription is told and a `branches:` one is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, fresh, load_fixture
from tests.e2e.processes import Service, cli
from tests.service.conftest import signed
from tests.waiting import wait_until

TOKEN = "tag-build-circle-token"
TAG_VCS = {"tag": "v1.4.0", "commit": {"subject": "Release 1.4.0", "body": ""}}
ROUTES = """\
handlers:
  releases: {type: webhook, url: "${SINK_URL}/hooks/releases", secret: hook-secret}
  main: {type: webhook, url: "${SINK_URL}/hooks/main", secret: hook-secret}
subscriptions:
  - {name: releases, handlers: [releases], tags: ["v*"]}
  - {name: main-only, handlers: [main], branches: [main]}
"""


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`circleci-events simulator` (empty) and `sink`, as processes; their base URLs."""
    sim_url, sink_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    started = [
        Service(
            cli("simulator", "--port", sim_url.rsplit(":", 1)[1], "--empty", "--token", TOKEN),
            env={},
            log_path=tmp_path / "simulator.log",
        ).start(),
        Service(cli("sink", "--port", sink_url.rsplit(":", 1)[1]), env={}, log_path=tmp_path / "sink.log").start(),
    ]
    try:
        started[0].wait_http(sim_url + "/_sim/calls")
        started[1].wait_http(sink_url + "/_sink/requests")
        yield sim_url, sink_url
    finally:
        for service in started:
            service.stop()


def delivered(sink_url: str, path: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{sink_url}/_sink/requests", params={"path": path}).json()
    return [r for r in answer["requests"] if r["status"] == 200]


def test_a_tag_build_with_branch_null_reaches_the_tags_subscription(
    redis_url, web_factory, worker_factory, stand_ins, tmp_path: Path
) -> None:
    sim_url, sink_url = stand_ins
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    payload = fresh(load_fixture("workflow-completed.tag.github-oauth.derived.json"))
    jobs = [{"name": "publish", "status": "success"}]
    made = httpx.post(f"{sim_url}/_sim/workflows", json={"payload": payload, "jobs": jobs, "vcs": TAG_VCS})
    assert made.status_code == 201, made.text
    env = {"CIRCLE_TOKEN": TOKEN, "CIRCLECI_API_URL": f"{sim_url}/api/v2", "ROUTES_FILE": str(routes),
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}  # fmt: skip
    _, base = web_factory(redis_url)
    worker = worker_factory(redis_url, SINK_URL=sink_url, **env)

    assert httpx.post(f"{base}/webhooks/circleci", **signed(payload)).status_code == 202
    enriched = worker.wait_for_log(lambda line: line.get("event") == "event_enriched")
    wait_until(lambda: delivered(sink_url, "/hooks/releases"), "the release message delivered")

    assert enriched["handlers"] == ["releases"] and enriched["complete"] is True
    (message,) = delivered(sink_url, "/hooks/releases")
    event = message["body"]
    assert (event["vcs"]["tag"], event["vcs"]["ref_kind"], event["vcs"]["branch"]) == ("v1.4.0", "tag", None)
    assert event["vcs"]["commit_subject"] == "Release 1.4.0"
    assert event["pipeline"]["trigger_actor"] == "octocat"
    assert event["enrichment"]["sources"] == {"vcs": "pipeline"}
    assert event["transition"]["kind"] == "first_seen"
    assert delivered(sink_url, "/hooks/main") == []
    calls = httpx.get(f"{sim_url}/_sim/calls").json()["calls"]
    assert calls["GET /pipeline/{pipeline-id}"] == 1
