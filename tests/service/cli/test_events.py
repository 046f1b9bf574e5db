"""`circleci-events events`: what happened to an event and who was told, after it really flowed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ISO_UTC
from tests.service.cli.conftest import assert_one_clear_line, run_cli
from tests.service.delivery_flow import DeliveryFlow
from workers.store import EventStore
from workers.timestamps import parse_time

pytestmark = pytest.mark.integration


@pytest.fixture
def flow(redis_url: str, tmp_path: Path) -> Iterator[DeliveryFlow]:
    with DeliveryFlow(redis_url, tmp_path) as flow:
        yield flow


def cli_json(flow: DeliveryFlow, *args: str) -> object:
    result = run_cli(*args, "--json", env=flow.env)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_show_tells_what_happened_and_who_was_told(flow: DeliveryFlow) -> None:
    flow.sink.add_fault(path="/slack/ops", status=500, times=1)
    event = flow.deliver(flow.event())
    EventStore(flow.redis).record_duplicate(event["event_id"])
    record = cli_json(flow, "events", "show", event["event_id"])
    assert record["received_at"] == event["received_at"]
    assert record["duplicates"] == 1
    assert record["enrichment"] == {
        "complete": True,
        "reason": None,
        "error_code": None,
        "api_calls": 4,
        "sources": {"vcs": "webhook"},
    }
    assert record["transition"]["kind"] == "broken"
    assert record["handlers"] == ["ops", "audit"]
    assert [(d["handler"], d["outcome"], d["attempts"]) for d in record["deliveries"]] == [
        ("audit", "delivered", 1),
        ("ops", "delivered", 2),
    ]
    ops = [(a["outcome"], a["status"]) for a in record["attempts"] if a["handler"] == "ops"]
    assert ops == [("retrying", 500), ("delivered", None)]


def test_show_json_gives_every_time_as_iso_8601(flow: DeliveryFlow) -> None:
    before = datetime.now(UTC)
    event = flow.deliver(flow.event())
    record = cli_json(flow, "events", "show", event["event_id"])
    times = [d[k] for d in record["deliveries"] for k in ("first_attempt_at", "last_attempt_at")]
    times += [a["at"] for a in record["attempts"]]
    assert len(times) == 6
    for text in times:
        assert ISO_UTC.fullmatch(text), text
        assert before - timedelta(seconds=1) <= parse_time(text) <= datetime.now(UTC)


def test_show_prints_it_for_a_person(flow: DeliveryFlow) -> None:
    event = flow.deliver(flow.event())
    result = run_cli("events", "show", event["event_id"], env=flow.env)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "enrichment   complete, 4 API calls" in lines
    assert "transition   broken (was success)" in lines
    assert "  ops: delivered after 1 attempt" in lines
    [ops] = [line for line in lines if line.startswith("    ") and "  ops  " in line]
    assert re.search(r"  ops  delivered  -  \d+\.\d{3} s$", ops), ops


def test_show_lists_each_attempt_with_its_status_or_error_and_duration() -> None:
    from service.cli.events import describe

    record = {
        "event_id": "e", "duplicates": 0, "deliveries": [], "attempts": [
            {"handler": "ops", "at": 0, "outcome": "retrying", "status": 503, "reason": "delivery_retryable",
             "error": "handler 'ops': destination answered 503: upstream down", "seconds": 0.25},
            {"handler": "ops", "at": 0, "outcome": "dead_lettered", "status": None,
             "error": "handler 'ops': timeout: no answer within 10 s (ReadTimeout)", "seconds": 10.002},
        ],
    }  # fmt: skip
    attempts = [line.strip().split("  ", 2)[-1] for line in describe(record) if line.startswith("    ")]
    assert attempts == [
        "retrying  HTTP 503  0.250 s  handler 'ops': destination answered 503: upstream down",
        "dead_lettered  -  10.002 s  handler 'ops': timeout: no answer within 10 s (ReadTimeout)",
    ]


def test_list_shows_the_newest_first_filtered_by_status(flow: DeliveryFlow) -> None:
    failed = flow.deliver(flow.event())
    passed = flow.deliver(flow.event(status="success"))
    rows = cli_json(flow, "events", "list")
    assert [r["event_id"] for r in rows] == [passed["event_id"], failed["event_id"]]
    assert rows[1]["deliveries"] == [
        {"handler": "audit", "outcome": "delivered", "attempts": 1},
        {"handler": "ops", "outcome": "delivered", "attempts": 1},
    ]
    table = run_cli("events", "list", env=flow.env).out.splitlines()
    assert table[2].endswith("audit:delivered, ops:delivered"), table
    only_failed = cli_json(flow, "events", "list", "--status", "failed")
    assert [r["event_id"] for r in only_failed] == [failed["event_id"]]
    assert len(cli_json(flow, "events", "list", "--limit", "1")) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [("failure", "--status 'failure' is not a status: the statuses are success, running, not_run, failed, "),
     ("sucess", "; did you mean 'success'?")],
)  # fmt: skip
def test_a_status_filter_no_event_can_have_exits_2_with_a_did_you_mean(status: str, expected: str) -> None:
    result = run_cli("events", "list", "--status", status, env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert_one_clear_line(result, 2)
    assert expected in result.err


def test_a_replay_posts_nothing_twice_unless_forced(flow: DeliveryFlow) -> None:
    event = flow.deliver(flow.event())
    replayed = cli_json(flow, "events", "replay", event["event_id"])
    assert replayed["queued"] == []
    assert replayed["already_delivered"] == [f"{event['event_id']}:ops", f"{event['event_id']}:audit"]
    flow.work()
    assert len(flow.sink.delivered("/slack/ops")) == 1
    cli_json(flow, "events", "replay", event["event_id"], "--handler", "ops", "--force")
    flow.work()
    assert len(flow.sink.delivered("/slack/ops")) == 2
    assert len(flow.sink.delivered("/hooks/audit")) == 1


def test_show_takes_the_start_of_an_id_when_one_event_starts_so(flow: DeliveryFlow) -> None:
    first = flow.deliver(flow.event(event_id="5f0c1a2b-0000-4000-8000-000000000001"))
    flow.deliver(flow.event(event_id="5f0c1a2b-9999-4000-8000-000000000002"))
    assert cli_json(flow, "events", "show", "5f0c1a2b-0")["event_id"] == first["event_id"]
    result = run_cli("events", "show", "5f0c1a2b-0", env=flow.env)
    assert result.code == 0 and f"event        {first['event_id']}" in result.out.splitlines()


def test_replay_takes_the_start_of_an_id_too(flow: DeliveryFlow) -> None:
    first = flow.deliver(flow.event(event_id="5f0c1a2b-0000-4000-8000-000000000001"))
    flow.deliver(flow.event(event_id="5f0c1a2b-9999-4000-8000-000000000002"))
    result = run_cli("events", "replay", "5f0c1a2b-0", "--handler", "ops", env=flow.env)
    assert result.code == 0, result.err
    assert result.out.strip() == f"already delivered {first['event_id']}:ops: nothing queued (--force posts it again)"


@pytest.mark.parametrize("command", ["show", "replay"])
def test_a_start_several_ids_share_exits_2_listing_them(flow: DeliveryFlow, command: str) -> None:
    ids = [flow.deliver(flow.event(event_id=f"5f0c1a2b-{n}"))["event_id"] for n in (1, 2)]
    result = run_cli("events", command, "5f0c", env=flow.env)
    assert_one_clear_line(result, 2)
    assert f"2 events start with '5f0c': {ids[1]}, {ids[0]}; give more of the id" in result.err


@pytest.mark.parametrize("command", ["show", "replay"])
def test_an_unknown_event_fails_in_one_line(flow: DeliveryFlow, command: str) -> None:
    result = run_cli("events", command, "no-such-event", env=flow.env)
    assert_one_clear_line(result, 1)
    assert "no-such-event" in result.err


@pytest.mark.parametrize("args", [("list",), ("show", "x"), ("replay", "x")])
@pytest.mark.parametrize(
    ("env", "code", "expected"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, 1, "cannot reach Redis"),
        ({}, 2, "REDIS_URL is not set"),
    ],
    ids=["unreachable", "unset"],
)
def test_without_redis_every_command_fails_in_one_line(args: tuple, env: dict, code: int, expected: str) -> None:
    result = run_cli("events", *args, env=env)
    assert_one_clear_line(result, code)
    assert expected in result.err


HOSTILE_BRANCH = "main\x1b]0;pwned\x07\x1b[2J\u202egnp.exe\x9b31m"


@pytest.mark.parametrize("args", [("events", "list"), ("events", "show")])
def test_event_data_cannot_drive_the_terminal(flow: DeliveryFlow, args: tuple[str, ...]) -> None:
    event = flow.event()
    event["vcs"] = {**event["vcs"], "branch": HOSTILE_BRANCH}
    event["workflow"] = {**event["workflow"], "name": "wf\x1b[31mred"}
    flow.deliver(event)
    extra = (event["event_id"],) if args[-1] == "show" else ()
    result = run_cli(*args, *extra, env=flow.env)
    assert result.code == 0, result.err
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in result.out
    assert "main\\x1b]0;pwned\\x07" in result.out  # shown, escaped, not dropped


def test_a_replay_of_a_delivered_event_says_so_instead_of_queued(flow: DeliveryFlow) -> None:
    event = flow.deliver(flow.event())
    result = run_cli("events", "replay", event["event_id"], "--handler", "ops", env=flow.env)
    assert result.code == 0, result.err
    assert result.out.strip() == (f"already delivered {event['event_id']}:ops: nothing queued (--force posts it again)")


def test_a_replay_to_a_handler_that_does_not_exist_fails_listing_the_handlers(flow: DeliveryFlow) -> None:
    event = flow.deliver(flow.event())
    result = run_cli("events", "replay", event["event_id"], "--handler", "opps", env=flow.env)
    assert_one_clear_line(result, 2)
    assert "no handler 'opps'" in result.err and "audit, ops" in result.err


def test_show_describes_what_broke() -> None:
    from service.cli.events import describe

    record = {"event_id": "e1", "duplicates": 0, "deliveries": [], "attempts": [], "failed_steps": [
        {"job": "build-image", "step": "docker build", "outcome": "exit 1", "log_tail": "a\nError 1",
         "no_log_tail": None},
        {"job": "lint", "step": "ruff", "outcome": "exit 2", "log_tail": None, "no_log_tail": "answered 403"},
    ]}  # fmt: skip
    lines = describe(record)
    assert lines[-5:] == [
        "failed step  build-image: docker build (exit 1)",
        "  | a",
        "  | Error 1",
        "failed step  lint: ruff (exit 2)",
        "  (no log tail: answered 403)",
    ]
