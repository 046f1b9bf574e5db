"""`circleci-events preview`: which subscriptions match and exactly what each handler would send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.simulators.sink import Sink, create_sink
from tests.conftest import FIXTURES, load_fixture
from tests.server import running
from tests.service.cli.conftest import assert_one_clear_line, run_cli

ENRICHED = FIXTURES / "enriched" / "workflow-completed.failed.json"
RAW = FIXTURES / "workflow-completed.failed.github-oauth.derived.json"
ROUTES = """\
handlers:
  ops: {type: slack, url: "${SINK}/slack/ops-token"}
  pager: {type: pagerduty, routing_key: "pd-routing-key", url: "${SINK}/pagerduty"}
  audit: {type: webhook, url: "${SINK}/hooks/audit", secret: "audit-secret"}
subscriptions:
  - {name: failures, handlers: [ops, pager], statuses: [failed]}
  - {name: releases, handlers: [audit], tags: ["v*"]}
"""


@pytest.fixture
def sink() -> Iterator[tuple[str, Sink]]:
    app = create_sink()
    with running(app) as base:
        yield base, app.state.sink


@pytest.fixture
def env(sink: tuple[str, Sink], tmp_path: Path) -> dict[str, str]:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    return {"SINK": sink[0], "ROUTES_FILE": str(routes)}


def preview(*args: str, env: dict[str, str]) -> dict:
    result = run_cli("preview", *args, "--json", env=env)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_shows_each_matching_handlers_body_and_sends_nothing(env: dict, sink: tuple[str, Sink]) -> None:
    shown = preview(str(ENRICHED), env=env)
    assert shown["subscriptions"] == [{"name": "failures", "handlers": ["ops", "pager"]}]
    bodies = {d["handler"]: d["body"] for d in shown["deliveries"]}
    assert list(bodies) == ["ops", "pager"]
    assert bodies["ops"]["blocks"][0]["type"] == "header"
    assert bodies["pager"]["event_action"] == "trigger"
    assert sink[1].requests() == []


@pytest.mark.parametrize("as_json", [(), ("--json",)], ids=["text", "json"])
def test_never_prints_a_secret(env: dict, as_json: tuple[str, ...]) -> None:
    result = run_cli("preview", str(ENRICHED), *as_json, env=env)
    assert result.code == 0, result.err
    assert "[redacted]" in result.out
    assert not [s for s in ("pd-routing-key", "ops-token", "audit-secret") if s in result.out]


def test_a_raw_webhook_payload_is_previewed_from_what_it_says(env: dict) -> None:
    shown = preview(str(RAW), env=env)
    assert shown["event_id"] == load_fixture(RAW.name)["id"]
    assert [d["handler"] for d in shown["deliveries"]] == ["ops", "pager"]


def test_the_webhook_handler_would_send_the_event_itself(env: dict, tmp_path: Path) -> None:
    event = load_fixture("enriched/workflow-completed.failed.json") | {"status": "success"}
    event["vcs"] |= {"tag": "v1.2.0", "branch": None}
    path = tmp_path / "tagged.json"
    path.write_text(json.dumps(event))
    shown = preview(str(path), "--routes", env["ROUTES_FILE"], env=env)
    assert shown["subscriptions"] == [{"name": "releases", "handlers": ["audit"]}]
    assert shown["deliveries"] == [{"handler": "audit", "type": "webhook", "body": event}]


def test_an_event_no_subscription_matches_sends_nothing(env: dict, tmp_path: Path) -> None:
    event = load_fixture("enriched/workflow-completed.failed.json") | {"status": "success"}
    path = tmp_path / "success.json"
    path.write_text(json.dumps(event))
    result = run_cli("preview", str(path), env=env)
    assert result.code == 0, result.err
    assert "no subscription matches: nothing would be sent" in result.out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot be read"),
        ("{not json", "not valid JSON"),
        ('{"type": "workflow-completed", "id": "x"}', "missing required field"),
        ((FIXTURES / "ping.observed.raw-body.json").read_text(), "a 'ping' event is acknowledged, never routed"),
    ],
    ids=["missing-file", "invalid-json", "invalid-payload", "ping"],
)
def test_a_bad_event_file_exits_2(env: dict, tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "event.json"
    if content is not None:
        path.write_text(content)
    result = run_cli("preview", str(path), env=env)
    assert_one_clear_line(result, 2)
    assert expected in result.err


def test_a_bad_routes_file_exits_2(env: dict, tmp_path: Path) -> None:
    routes = tmp_path / "bad.yaml"
    routes.write_text("handlers:\n  ops: {type: slack, url: [x\n")
    result = run_cli("preview", str(ENRICHED), "--routes", str(routes), env=env)
    assert_one_clear_line(result, 2)
    assert f"routes file {routes}, line" in result.err


SLACK_APP_ROUTES = """\
handlers:
  ci: {type: slack_app, token: "xoxb-preview-token", channel: "#ci", api_url: "http://127.0.0.1:1/api/"}
people:
  "author@example.com": {slack: U0ADA}
subscriptions:
  - {name: breaks, handlers: [ci]}
"""


@pytest.mark.parametrize(
    ("kind", "thread", "methods"),
    [
        ("broken", None, ["chat.postMessage"]),
        ("still_failing", "1700000000.000100", ["chat.postMessage", "chat.update"]),
        ("fixed", "1700000000.000100", ["chat.update", "chat.postMessage"]),
    ],
)
def test_slack_app_shows_its_calls_for_a_given_thread(
    tmp_path: Path, kind: str, thread: str | None, methods: list[str]
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SLACK_APP_ROUTES)
    event = json.loads(ENRICHED.read_text())
    event["transition"] |= {"kind": kind, "failed_pipelines": 2}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    shown = preview(str(path), *(["--thread", thread] if thread else []), env={"ROUTES_FILE": str(routes)})
    [delivery] = shown["deliveries"]
    calls = delivery["body"]["calls"]
    assert [c["method"] for c in calls] == methods
    if thread:
        assert all(c.get("ts", c.get("thread_ts")) == thread for c in calls)
    else:
        assert calls[0]["text"].startswith("<@U0ADA> ")  # the break mentions through people:
    assert "xoxb-preview-token" not in json.dumps(shown)
