"""The enriched event is stored once, read back by delivery jobs, and its history is kept."""

from __future__ import annotations

import json
import time

import pytest
from redis import Redis

from tests.conftest import load_fixture
from workers.delivery.dead_letters import DeadLetter, DeadLetters, excerpt
from workers.store import ATTEMPTS_PREFIX, EVENT_PREFIX, EVENTS_INDEX, RECORD_PREFIX, EventStore

pytestmark = pytest.mark.integration


@pytest.fixture
def event() -> dict:
    return load_fixture("enriched/workflow-completed.failed.json")


def test_save_then_load_gives_the_event_back(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    store.save(event)
    assert store.load(event["event_id"]) == event


def test_event_and_record_expire_with_the_ttl(redis: Redis, event: dict) -> None:
    EventStore(redis, ttl=60).save(event)
    assert 0 < redis.ttl(EVENT_PREFIX + event["event_id"]) <= 60
    assert 0 < redis.ttl(RECORD_PREFIX + event["event_id"]) <= 60


def test_ids_starting_finds_stored_ids_by_their_start_newest_first(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    for n, event_id in enumerate(["abc-1", "abc-2", "abd-3", "a*c-4"]):
        store.save(event | {"event_id": event_id, "received_at": f"2026-01-01T00:00:0{n}Z"})
    redis.delete(RECORD_PREFIX + "abc-1")  # expired, still in the index until the next trim
    assert store.ids_starting("ab") == ["abd-3", "abc-2"]
    assert store.ids_starting("a*") == ["a*c-4"]  # a glob character is a character
    assert store.ids_starting("x") == []


def test_load_of_an_unknown_event_is_none(redis: Redis) -> None:
    assert EventStore(redis).load("nope") is None
    assert EventStore(redis).record("nope") is None


def test_record_summarises_the_event(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    store.save(event, handlers=["ops", "audit"])
    record = store.record(event["event_id"])
    assert record is not None
    assert record["received_at"] == event["received_at"]
    assert record["request_id"] == event["request_id"]
    assert record["event_type"] == "workflow-completed"
    assert record["project"] == "github/circleci/webhook-service"
    assert (record["branch"], record["workflow"], record["status"]) == ("main", "build-test-deploy", "failed")
    assert record["transition"] == event["transition"]
    assert record["enrichment"] == event["enrichment"]
    assert record["handlers"] == ["ops", "audit"]
    assert record["duplicates"] == 0
    assert record["deliveries"] == {}


def test_duplicates_are_counted(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    store.save(event)
    assert [store.record_duplicate(event["event_id"]) for _ in range(2)] == [1, 2]
    assert store.record(event["event_id"])["duplicates"] == 2  # type: ignore[index]


def test_attempts_are_kept_per_handler(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    store.save(event, handlers=["ops"])
    event_id = event["event_id"]
    assert store.record_attempt(event_id, "ops", outcome="retrying", status=500, reason="delivery_retryable") == 1
    assert store.record_attempt(event_id, "ops", outcome="delivered") == 2
    record = store.record(event_id)
    assert record is not None
    ops = record["deliveries"]["ops"]
    assert (ops["outcome"], ops["attempts"], ops["last_status"]) == ("delivered", 2, None)
    assert ops["first_attempt_at"] <= ops["last_attempt_at"]
    assert [(a["outcome"], a["status"]) for a in record["attempts"]] == [("retrying", 500), ("delivered", None)]
    assert store.handler_state(event_id, "ops")["attempts"] == 2
    assert store.handler_state(event_id, "other") == {
        "outcome": None,
        "attempts": 0,
        "first_attempt_at": None,
        "last_attempt_at": None,
        "last_status": None,
    }


def test_what_a_delivered_attempt_sent_is_kept_packed_and_read_back_whole(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    store.save(event, handlers=["ops"])
    body = json.dumps({"text": "❌ build-test-deploy failed on main", "blocks": [{"type": "section"}] * 200})
    sent = [{"to": "POST https://hooks.slack.com/…", "body": body}]
    store.record_attempt(event["event_id"], "ops", outcome="delivered", sent=sent)
    record = store.record(event["event_id"])
    assert record is not None and record["attempts"][0]["sent"] == sent
    [kept] = redis.lrange(ATTEMPTS_PREFIX + event["event_id"], 0, -1)
    assert len(kept) < len(body) / 4


def test_an_unreadable_sent_entry_says_so_instead_of_failing_the_record(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    store.save(event, handlers=["ops"])
    redis.rpush(
        ATTEMPTS_PREFIX + event["event_id"], json.dumps({"handler": "ops", "outcome": "delivered", "sent": "!"})
    )
    record = store.record(event["event_id"])
    assert record is not None
    assert record["attempts"][0]["sent"] == [{"to": "?", "body": "(what it sent could not be read back)"}]


def test_a_first_attempt_is_recorded_in_one_write_as_a_counted_one_would_be(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=60)
    store.save(event, handlers=["ops", "audit"])
    event_id = event["event_id"]
    assert store.record_attempt(event_id, "ops", outcome="delivered", first=True) == 1
    store.record_attempt(event_id, "audit", outcome="delivered")
    record = store.record(event_id)
    assert record is not None
    ops, audit = record["deliveries"]["ops"], record["deliveries"]["audit"]
    assert {k: v for k, v in ops.items() if "_at" not in k} == {k: v for k, v in audit.items() if "_at" not in k}
    assert ops["first_attempt_at"] == ops["last_attempt_at"]
    assert store.record_attempt(event_id, "ops", outcome="delivered") == 2  # later ones are counted on
    assert 0 < redis.ttl(RECORD_PREFIX + event_id) <= 60


def test_recent_lists_newest_first(redis: Redis, event: dict) -> None:
    store = EventStore(redis, ttl=7 * 24 * 3600)
    now = time.time()
    for n, age in enumerate([30, 10, 20]):
        received = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - age))
        store.save({**event, "event_id": f"e{n}", "received_at": received})
    assert store.recent() == ["e1", "e2", "e0"]
    assert store.recent(limit=1) == ["e1"]
    assert store.recent(since=now - 15) == ["e1"]


def test_trimming_drops_index_entries_older_than_the_ttl(redis: Redis, event: dict) -> None:
    """The worker process trims at its maintenance interval, not every save (one command less per event)."""
    store = EventStore(redis, ttl=3600)
    store.save({**event, "event_id": "old", "received_at": "2020-01-01T00:00:00Z"})
    store.save({**event, "event_id": "new", "received_at": None})
    assert store.trim() == 1
    assert [m.decode() for m in redis.zrange(EVENTS_INDEX, 0, -1)] == ["new"]


def test_dead_letters_round_trip_and_list_newest_first(redis: Redis) -> None:
    letters = DeadLetters(redis, ttl=60)
    now = time.time()
    for n in range(2):
        letters.put(DeadLetter(f"e{n}:ops", f"e{n}", "ops", "rejected", 400, "bad", 1, 1.0, 2.0, dead_at=now + n))
    assert [d.delivery_id for d in letters.list()] == ["e1:ops", "e0:ops"]
    assert letters.get("e0:ops") == DeadLetter("e0:ops", "e0", "ops", "rejected", 400, "bad", 1, 1.0, 2.0, now)
    assert letters.remove("e0:ops") is True
    assert letters.remove("e0:ops") is False
    assert letters.get("e0:ops") is None


def test_dead_letter_excerpt_is_short_and_on_one_line(redis: Redis) -> None:
    letters = DeadLetters(redis, ttl=60)
    letters.put(DeadLetter("e:ops", "e", "ops", "retry_budget_exhausted", body_excerpt="x\n" * 500))
    kept = letters.get("e:ops")
    assert kept is not None
    assert len(kept.body_excerpt) <= 200 and "\n" not in kept.body_excerpt
    assert excerpt("short") == "short"
