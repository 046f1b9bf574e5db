"""`circleci-events dead-letters`: read what could not be delivered, replay it once, purge it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cli.dead_letters import why
from tests.conftest import ISO_UTC
from tests.service.cli.conftest import assert_one_clear_line, run_cli
from tests.service.delivery_flow import DeliveryFlow

pytestmark = pytest.mark.integration


@pytest.fixture
def flow(redis_url: str, tmp_path: Path) -> Iterator[DeliveryFlow]:
    with DeliveryFlow(redis_url, tmp_path) as flow:
        yield flow


def refused(flow: DeliveryFlow, count: int = 1) -> list[str]:
    """Deliver `count` events whose Slack post is refused (400): one dead letter each."""
    flow.sink.add_fault(kind="bad_request", path="/slack/ops", times=count)
    events = [flow.deliver(flow.event()) for _ in range(count)]
    flow.sink.clear_faults()
    return [f"{e['event_id']}:ops" for e in events]


def cli(flow: DeliveryFlow, *args: str, input: str | None = None) -> str:
    result = run_cli("dead-letters", *args, env=flow.env, input=input)
    assert result.code == 0, result.err
    return result.out


def test_list_and_show_a_refused_delivery(flow: DeliveryFlow) -> None:
    [delivery_id] = refused(flow)
    [row] = json.loads(cli(flow, "list", "--json"))
    assert (row["delivery_id"], row["handler"], row["reason"], row["last_status"]) == (
        delivery_id,
        "ops",
        "rejected",
        400,
    )
    shown = json.loads(cli(flow, "show", delivery_id, "--json"))
    assert shown["body_excerpt"] == "invalid_payload" and shown["attempts"] == 1
    for key in ("first_attempt_at", "last_attempt_at", "dead_at"):
        assert ISO_UTC.fullmatch(shown[key]), (key, shown[key])
    assert row["dead_at"] == shown["dead_at"]
    header, line = cli(flow, "list").splitlines()
    assert header.split() == ["DELIVERY_ID", "HANDLER", "REASON", "WHY", "ATTEMPTS", "DEAD_AT"]
    assert "  rejected  HTTP 400: invalid_payload  1  " in line, "the table says why, not only the reason"


@pytest.mark.parametrize(
    ("last_status", "excerpt", "shown"),
    [(404, "no_team", "HTTP 404: no_team"),
     (None, "connection refused ([Errno 111])", "connection refused ([Errno 111])"),
     (None, "timed out after 10 s", "timed out after 10 s"),
     (500, "line one\n  line two", "HTTP 500: line one line two"),
     (503, "x" * 80, "HTTP 503: " + "x" * 49 + "…"),
     (None, None, ""),
     (200, "chat.postMessage: Slack answered not_in_channel", "chat.postMessage: Slack answered not_in_channel")],
)  # fmt: skip
def test_why_is_the_last_answer_in_a_few_words(last_status: int | None, excerpt: str | None, shown: str) -> None:
    assert why({"last_status": last_status, "body_excerpt": excerpt}) == shown


def test_a_replay_posts_exactly_once(flow: DeliveryFlow) -> None:
    [delivery_id] = refused(flow)
    assert cli(flow, "replay", delivery_id) == f"queued {delivery_id}\n"
    flow.work()
    assert len(flow.sink.delivered("/slack/ops")) == 1
    assert json.loads(cli(flow, "list", "--json")) == []
    result = run_cli("dead-letters", "replay", delivery_id, env=flow.env)  # gone: a second replay posts nothing
    assert_one_clear_line(result, 1)
    flow.work()
    assert len(flow.sink.delivered("/slack/ops")) == 1


def test_replay_all_posts_each_once(flow: DeliveryFlow) -> None:
    ids = refused(flow, 2)
    queued = json.loads(cli(flow, "replay", "--all", "--json"))
    assert sorted(q["delivery_id"] for q in queued) == sorted(ids)
    flow.work()
    assert len(flow.sink.delivered("/slack/ops")) == 2


@pytest.mark.parametrize(("args", "input"), [(("--yes",), None), ((), "y\n")], ids=["yes", "confirmed"])
def test_purge_forgets_every_dead_letter(flow: DeliveryFlow, args: tuple, input: str | None) -> None:
    refused(flow, 2)
    assert cli(flow, "purge", *args, input=input).splitlines()[-1] == "purged 2 dead letters"
    assert json.loads(cli(flow, "list", "--json")) == []


def test_show_replay_and_purge_take_the_start_of_an_id(flow: DeliveryFlow) -> None:
    first, second = refused(flow, 2)
    start = first[:8] if first[:8] != second[:8] else first[:-3]
    assert json.loads(cli(flow, "show", start, "--json"))["delivery_id"] == first
    assert cli(flow, "replay", start) == f"queued {first}\n"
    assert cli(flow, "purge", second[:12], "--yes").splitlines()[-1] == "purged 1 dead letters"
    assert json.loads(cli(flow, "list", "--json")) == []


@pytest.mark.parametrize("command", ["show", "replay", "purge"])
def test_a_start_several_ids_share_exits_2_listing_them(flow: DeliveryFlow, command: str) -> None:
    flow.sink.add_fault(kind="bad_request", path="/slack/ops", times=1)
    flow.sink.add_fault(kind="bad_request", path="/hooks/audit", times=1)
    event = flow.deliver(flow.event())  # both handlers refuse it: two dead letters of one event
    flow.sink.clear_faults()
    result = run_cli("dead-letters", command, event["event_id"], env=flow.env)
    assert_one_clear_line(result, 2)
    assert f"2 dead letters start with {event['event_id']!r}: " in result.err
    assert f"{event['event_id']}:ops" in result.err and f"{event['event_id']}:audit" in result.err
    assert len(json.loads(cli(flow, "list", "--json"))) == 2, "nothing replayed or purged"


def test_purge_unconfirmed_keeps_them(flow: DeliveryFlow) -> None:
    refused(flow)
    result = run_cli("dead-letters", "purge", env=flow.env, input="n\n")
    assert result.code == 1 and "Traceback" not in result.err
    assert len(json.loads(cli(flow, "list", "--json"))) == 1


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (("show", "nope:ops"), 1, "no dead letter 'nope:ops'"),
        (("replay", "nope:ops"), 1, "no dead letter 'nope:ops'"),
        (("replay",), 2, "give a DELIVERY_ID or --all"),
        (("replay", "x", "--all"), 2, "give a DELIVERY_ID or --all"),
    ],
)
def test_a_bad_request_fails_in_one_line(flow: DeliveryFlow, args: tuple, code: int, expected: str) -> None:
    result = run_cli("dead-letters", *args, env=flow.env)
    assert_one_clear_line(result, code)
    assert expected in result.err


@pytest.mark.parametrize("args", [("list",), ("show", "x"), ("replay", "--all"), ("purge", "--yes")])
def test_unreachable_redis_fails_in_one_line(args: tuple) -> None:
    result = run_cli("dead-letters", *args, env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert_one_clear_line(result, 1)
    assert "cannot reach Redis" in result.err


def test_an_undecodable_job_is_listed_and_its_replay_refused_in_one_line(flow: DeliveryFlow) -> None:
    import time

    from workers.delivery.dead_letters import UNDECODABLE, DeadLetter, DeadLetters

    letter = DeadLetter("job:abc", "-", "-", UNDECODABLE, body_excerpt="RecursionError: too deep", dead_at=time.time())
    DeadLetters(flow.redis, ttl=600).put(letter)
    [row] = json.loads(cli(flow, "list", "--json"))
    assert (row["delivery_id"], row["reason"]) == ("job:abc", "undecodable")
    result = run_cli("dead-letters", "replay", "job:abc", env=flow.env)
    assert_one_clear_line(result, 1)
    assert "could not read" in result.err and "RecursionError" in result.err
