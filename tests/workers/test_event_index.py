"""The console's event indexes: kept as events are stored and attempted, read newest first a page at
a time, every candidate checked against its record, and trimmed with the events."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
import redis

from config.settings import Settings
from tests.clock import FakeClock
from tests.conftest import SECRET, load_fixture
from workers import operations
from workers.event_index import IDS, KEYS, MAX_WALK, PIPELINES, REFRESH_SECONDS, EventQuery, KeyRefresh, index_key
from workers.store import EventStore

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis: redis.Redis) -> redis.Redis:  # the real Redis (tests/workers/conftest.py)
    return redis


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings.from_environ({"REDIS_URL": redis_url, "CIRCLECI_WEBHOOK_SECRETS": SECRET})


def store_event(store: EventStore, n: int, **changes: object) -> dict:
    event = load_fixture("enriched/workflow-completed.failed.json")
    received = datetime.fromtimestamp(1_800_000_000 + n, UTC).isoformat()
    event |= {"event_id": f"{n:04d}-{uuid.uuid4()}", "received_at": received}
    event["pipeline"] = {**event["pipeline"], "number": n}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        event[section] = {**event[section], name: value} if name else value
    store.save(event, handlers=["ops"])
    return event


def ids(page: dict) -> list[str]:
    return [row["event_id"] for row in page["rows"]]


def find(client: redis.Redis, settings: Settings, **kw: object) -> dict:
    limit = kw.pop("limit", 50)
    via, before = kw.pop("via", None), kw.pop("before", None)
    return operations.find_events(client, settings, EventQuery(**kw), limit=limit, via=via, before=before)


def test_every_filter_finds_exactly_its_events(client: redis.Redis, settings: Settings) -> None:
    store = EventStore(client, ttl=3600 * 24 * 365 * 10)
    a = store_event(store, 1)
    b = store_event(store, 2, status="success", vcs__branch="dev")
    c = store_event(store, 3, project__slug="gh/acme/other", workflow__name="deploy")
    store.record_attempt(b["event_id"], "ops", outcome="delivered")
    store.record_attempt(c["event_id"], "ops", outcome="dead_lettered")
    assert ids(find(client, settings)) == [c["event_id"], b["event_id"], a["event_id"]]
    assert ids(find(client, settings, status="success")) == [b["event_id"]]
    assert ids(find(client, settings, branch="dev")) == [b["event_id"]]
    assert ids(find(client, settings, project="gh/acme/other")) == [c["event_id"]]
    assert ids(find(client, settings, workflow="deploy")) == [c["event_id"]]
    assert ids(find(client, settings, outcome="dead_lettered")) == [c["event_id"]]
    assert ids(find(client, settings, pipeline="2")) == [b["event_id"]]
    assert ids(find(client, settings, id_prefix="0001-")) == [a["event_id"]]
    assert ids(find(client, settings, status="failed", branch="dev")) == []


def test_an_outcome_that_changed_is_not_found_under_the_old_one(client: redis.Redis, settings: Settings) -> None:
    store = EventStore(client, ttl=3600 * 24 * 365 * 10)
    event = store_event(store, 1)
    store.record_attempt(event["event_id"], "ops", outcome="retrying")
    store.record_attempt(event["event_id"], "ops", outcome="delivered")
    assert ids(find(client, settings, outcome="retrying")) == []  # the index still lists it; the record decides
    assert ids(find(client, settings, outcome="delivered")) == [event["event_id"]]


def test_pages_follow_each_other_without_gaps_or_repeats(client: redis.Redis, settings: Settings) -> None:
    store = EventStore(client, ttl=3600 * 24 * 365 * 10)
    events = [store_event(store, n) for n in range(1, 13)]
    seen: list[str] = []
    page = find(client, settings, status="failed", limit=5)
    while True:
        seen += ids(page)
        if page["next"] is None:
            break
        page = find(client, settings, status="failed", limit=5, **page["next"])
    assert seen == [e["event_id"] for e in reversed(events)]


def test_a_page_reads_at_most_max_walk_candidates(client: redis.Redis, settings: Settings) -> None:
    store = EventStore(client, ttl=3600 * 24 * 365 * 10)
    with client.pipeline(transaction=False) as pipe:  # index entries whose records have expired
        for n in range(MAX_WALK + 10):
            pipe.zadd("cie:events", {f"gone-{n}": 1_900_000_000 + n})  # newer than the stored one
        pipe.execute()
    store_event(store, 1)
    page = find(client, settings)
    assert page["rows"] == [] and page["searched"] == MAX_WALK and page["next"] is not None


def test_trim_drops_what_expired_with_the_events(client: redis.Redis, settings: Settings) -> None:
    store = EventStore(client, ttl=3600)
    old = store_event(store, 1)  # received in 2027: within the TTL of now (2026), kept
    client.zadd("cie:events", {"expired": time.time() - 7200})
    client.zadd(index_key("status", "failed"), {"expired": time.time() - 7200})
    client.zadd(IDS, {"expired": 0})
    store.trim()
    assert client.zscore(index_key("status", "failed"), "expired") is None
    assert client.zscore(IDS, "expired") is None
    assert client.zscore(index_key("status", "failed"), old["event_id"]) is not None
    assert client.ttl(index_key("status", "failed")) > 0
    assert client.zcard(KEYS) >= 5


def test_a_worker_refreshes_an_index_keys_expiry_and_score_once_per_ten_minutes(client: redis.Redis) -> None:
    """Not with every event: two commands per field per event less; a key never loses its expiry."""
    clock = FakeClock()
    store = EventStore(client, ttl=3600, clock=clock, refresh=KeyRefresh())
    key = index_key("status", "failed")
    store_event(store, 1)
    written = client.zscore(KEYS, key)
    before = client.info("commandstats")
    store_event(store, 2)
    clock.advance(REFRESH_SECONDS - 1)
    store_event(store, 3)
    after = client.info("commandstats")
    # per event: its record's alone; none for the fields, nor for the pipeline number (one index of all)
    assert after["cmdstat_expire"]["calls"] - before["cmdstat_expire"]["calls"] == 2 * 1
    assert client.zscore(KEYS, key) == written
    assert client.zcard(key) == 3 and client.ttl(key) > 0
    clock.advance(1)
    store_event(store, 4)
    assert client.zscore(KEYS, key) == clock.now()


def test_a_key_whose_ttl_is_short_is_refreshed_within_half_of_it() -> None:
    refresh = KeyRefresh()
    assert refresh.due("k", 1000.0, ttl=60)
    assert not refresh.due("k", 1029.0, ttl=60)
    assert refresh.due("k", 1030.0, ttl=60)


def test_the_pipeline_filter_reads_one_index_of_every_event_by_number(client: redis.Redis, settings: Settings) -> None:
    """One zset scored by pipeline number, not a new key per number (two commands per event more)."""
    store = EventStore(client, ttl=3600 * 24 * 365 * 10)
    a = store_event(store, 7)
    later = datetime.fromtimestamp(1_800_000_007.5, UTC).isoformat()
    b = store_event(store, 7, project__slug="gh/acme/other", received_at=later)
    c = store_event(store, 8)
    assert ids(find(client, settings, pipeline="7")) == [b["event_id"], a["event_id"]]
    assert ids(find(client, settings, pipeline="7", project="gh/acme/other")) == [b["event_id"]]
    assert ids(find(client, settings, project="gh/acme/other", pipeline="8")) == []
    assert ids(find(client, settings, status="failed", pipeline="8")) == [c["event_id"]]
    assert ids(find(client, settings, id_prefix="0007-", pipeline="8")) == []
    assert ids(find(client, settings, pipeline="seven")) == []  # no event has it, and nothing fails
    assert client.keys(index_key("pipeline", "*")) == []


def test_events_indexed_by_a_key_per_pipeline_number_before_are_still_found(
    client: redis.Redis, settings: Settings
) -> None:
    store = EventStore(client, ttl=3600 * 24 * 365 * 10)
    event = store_event(store, 9)
    client.zrem(PIPELINES, event["event_id"])  # as the release before indexed it
    client.zadd(index_key("pipeline", "9"), {event["event_id"]: client.zscore("cie:events", event["event_id"])})
    assert ids(find(client, settings, pipeline="9")) == [event["event_id"]]
    assert ids(find(client, settings, pipeline="9", status="failed", via="status")) == [event["event_id"]]
    assert ids(find(client, settings, pipeline="8", status="failed", via="status")) == []


def test_trim_drops_expired_events_from_the_pipeline_index(client: redis.Redis) -> None:
    store = EventStore(client, ttl=3600)
    client.zadd("cie:events", {"expired": time.time() - 7200})
    client.zadd(PIPELINES, {"expired": 12})
    store.trim()
    assert client.zscore(PIPELINES, "expired") is None
