"""`circleci-events preview`: which subscriptions match and exactly what each handler would send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.simulators.sink import Sink, create_sink
from tests.conftest import FIXTURES, load_fixture
from tests.server import running
from tests.service.cli.conftest import assert_one_clear_line, run_cli
from workers.transition import TransitionStore

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
  - {name: release-branches, handlers: [audit], branches: ["release/*"]}
  - {name: breakages, handlers: [pager], transitions: [broken]}
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
    assert shown["subscriptions"] == [
        {"name": "failures", "handlers": ["ops", "pager"]},
        {"name": "breakages", "handlers": ["pager"]},
    ]
    bodies = {d["handler"]: d["body"] for d in shown["deliveries"]}
    assert list(bodies) == ["ops", "pager"]
    assert bodies["ops"]["blocks"][0]["type"] == "header"
    assert bodies["pager"]["event_action"] == "trigger"
    assert sink[1].requests() == []


@pytest.mark.parametrize("as_json", [(), ("--json",)], ids=["text", "json"])
def test_never_prints_a_secret(env: dict, as_json: tuple[str, ...]) -> None:
    result = run_cli("preview", str(ENRICHED), *as_json, env=env)
    assert result.code == 0, result.err
    assert "[redacted]" in result.out or not as_json  # the text shows no routing key at all
    assert not [s for s in ("pd-routing-key", "ops-token", "audit-secret") if s in result.out]


def test_a_raw_webhook_payload_is_previewed_from_what_it_says(env: dict) -> None:
    shown = preview(str(RAW), env=env)
    assert shown["event_id"] == load_fixture(RAW.name)["id"]
    assert [d["handler"] for d in shown["deliveries"]] == ["ops", "pager"]


def test_the_webhook_handler_would_send_the_event_itself(env: dict, tmp_path: Path) -> None:
    event = load_fixture("enriched/workflow-completed.failed.json") | {"status": "success", "transition": None}
    event["vcs"] |= {"tag": "v1.2.0", "branch": None}
    path = tmp_path / "tagged.json"
    path.write_text(json.dumps(event))
    shown = preview(str(path), "--routes", env["ROUTES_FILE"], env=env)
    assert shown["subscriptions"] == [{"name": "releases", "handlers": ["audit"]}]
    assert shown["deliveries"] == [{"handler": "audit", "type": "webhook", "body": event}]


def test_an_event_no_subscription_matches_sends_nothing(env: dict, tmp_path: Path) -> None:
    event = load_fixture("enriched/workflow-completed.failed.json") | {"status": "success", "transition": None}
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


def test_says_of_each_subscription_whether_it_matches_and_else_the_first_key_that_failed(env: dict) -> None:
    result = run_cli("preview", str(RAW), env=env)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "transition   none (unknown: pass --transition KIND or set REDIS_URL to read the live state)" in lines
    assert lines[lines.index("subscriptions") + 1 :][:4] == [
        "  matches     failures (line 6) -> ops, pager",
        "  no match    releases (line 7): tags: none (not a tag build)",
        "  no match    release-branches (line 8): branches: 'feature/new-endpoint' does not match [release/*]",
        "  no match    breakages (line 9): transitions: none (no transition known); "
        "unknown: pass --transition KIND or set REDIS_URL to read the live state",
    ]


def test_prints_what_each_handler_would_send_as_the_demo_does(env: dict) -> None:
    lines = run_cli("preview", str(ENRICHED), env=env).out.splitlines()
    ops = lines[lines.index("── ops (slack) would send ──") + 1 :]
    assert ops[0].startswith("slack text   ❌ build-test-deploy failed on main")
    assert "slack blocks" in ops and "  [header]  ❌ build-test-deploy failed on main — webhook-service #131" in ops
    pager = lines[lines.index("── pager (pagerduty) would send ──") + 1 :]
    assert pager[0].startswith("pagerduty    trigger · dedup_key ")


def test_json_gives_the_documents_and_why_the_others_do_not_match(env: dict) -> None:
    shown = preview(str(ENRICHED), env=env)
    assert [s["name"] for s in shown["subscriptions"]] == ["failures", "breakages"]
    assert shown["unmatched"] == [
        {"name": "releases", "key": "tags", "reason": "tags: none (not a tag build)"},
        {"name": "release-branches", "key": "branches", "reason": "branches: 'main' does not match [release/*]"},
    ]
    assert shown["transition"]["kind"] == "broken"


def test_a_raw_webhook_takes_its_transition_from_the_option(env: dict) -> None:
    shown = preview(str(RAW), "--transition", "broken", env=env)
    assert [s["name"] for s in shown["subscriptions"]] == ["failures", "breakages"]
    assert shown["transition"] == {"kind": "broken", "previous_status": None, "previous_pipeline_number": None}
    text = run_cli("preview", str(RAW), "--transition", "fixed", env=env).out.splitlines()
    assert "transition   fixed (--transition)" in text
    assert "  no match    breakages (line 9): transitions: 'fixed' not in [broken]" in text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("broke", "--transition 'broke' is not a transition kind: the kinds are first_seen, passing, broken, fixed, "
               "still_failing, canceled, stale; did you mean 'broken'?"),
     ("nope", "the kinds are first_seen, passing, broken, fixed, still_failing, canceled, stale")],
)  # fmt: skip
def test_an_unknown_transition_kind_exits_2_naming_the_kinds(env: dict, kind: str, expected: str) -> None:
    result = run_cli("preview", str(RAW), "--transition", kind, env=env)
    assert_one_clear_line(result, 2)
    assert expected in result.err


def test_a_job_event_has_no_transition_to_assume(env: dict) -> None:
    result = run_cli("preview", str(FIXTURES / "job-completed.failed.github-oauth.derived.json"), "--transition",
                     "broken", env=env)  # fmt: skip
    assert_one_clear_line(result, 2)
    assert "--transition: a job-completed event has no transition (workflow events do)" in result.err


def every_key_and_value(client: redis.Redis) -> dict:
    return {key: client.dump(key) for key in client.keys("*")}


@pytest.mark.integration
def test_a_raw_webhook_reads_its_transition_from_the_live_state_and_writes_nothing(env: dict, redis_url: str) -> None:
    payload = load_fixture(RAW.name)
    client = redis.Redis.from_url(redis_url)
    shown = preview(str(RAW), env=env | {"REDIS_URL": redis_url})
    assert shown["transition"]["kind"] == "first_seen"
    assert every_key_and_value(client) == {}
    TransitionStore(client).record(
        project=payload["project"]["slug"], ref=payload["pipeline"]["vcs"]["branch"],
        workflow=payload["workflow"]["name"], status="success", pipeline_number=payload["pipeline"]["number"] - 1,
        happened_at="2021-09-01T22:00:00Z",
    )  # fmt: skip
    before = every_key_and_value(client)
    result = run_cli("preview", str(RAW), env=env | {"REDIS_URL": redis_url})
    assert result.code == 0, result.err
    assert "transition   broken (was success #130; the live state in REDIS_URL; nothing recorded)" in result.out
    assert "  matches     breakages (line 9) -> pager" in result.out
    assert every_key_and_value(client) == before
    client.close()


def test_an_unreachable_redis_fails_in_one_line(env: dict) -> None:
    result = run_cli("preview", str(RAW), env=env | {"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert_one_clear_line(result, 1)
    assert "cannot reach Redis (Redis did not answer while reading a transition" in result.err


def test_redaction_leaves_the_events_urls_whole(env: dict, tmp_path: Path) -> None:
    """A handler URL with no credential (`https://ci.example.com:8443/pipelines`) cut `/pipelines`
    out of every CircleCI link in what the preview showed."""
    routes = tmp_path / "ci.yaml"
    routes.write_text(
        "handlers:\n  ci: {type: webhook, url: 'https://ci.example.com:8443/pipelines', secret: 'ci-secret'}\n"
        "subscriptions:\n  - {name: all, handlers: [ci]}\n"
    )
    [delivery] = preview(str(ENRICHED), "--routes", str(routes), env=env)["deliveries"]
    assert delivery["body"] == load_fixture("enriched/workflow-completed.failed.json")


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


def test_shows_the_failing_step_and_its_tail_unless_a_handler_says_log_tail_false(env: dict, tmp_path: Path) -> None:
    event = json.loads(ENRICHED.read_text())
    event["failed_jobs"][0]["failed_step"] = {"name": "docker build", "status": "failed", "exit_code": 1,
        "node_index": 0, "log_tail": "Step 5/9 : RUN make\nError: no space left", "truncated": False,
        "source": "v1.1", "reason": None}  # fmt: skip
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    routes = Path(env["ROUTES_FILE"])
    routes.write_text(ROUTES.replace('url: "${SINK}/pagerduty"}', 'url: "${SINK}/pagerduty", log_tail: false}'))
    result = run_cli("preview", str(path), env=env)
    assert result.code == 0, result.err
    assert "*Failed step* `docker build` in test · exit 1" in result.out and "Error: no space left" in result.out
    pager = preview(str(path), env=env)["deliveries"][1]
    assert pager["handler"] == "pager"
    assert pager["body"]["payload"]["custom_details"]["failed_steps"][0]["log_tail"] is None
