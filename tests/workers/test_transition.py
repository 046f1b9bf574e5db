"""Transitions per (project, ref, workflow): fakeredis for the rules, the real Redis for order and races."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import fakeredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.errors import ConfigurationError, RedisUnavailable
from tests.clock import FakeClock
from workers.event_index import REFRESH_SECONDS, KeyRefresh
from workers.transition import (
    DEFAULT_TTL_SECONDS,
    STATES_INDEX,
    Transition,
    TransitionStore,
    is_failure,
    transition_key,
)

PROJECT = "gh/acme/api"


@pytest.fixture
def store() -> TransitionStore:
    return TransitionStore(fakeredis.FakeRedis())


def record(
    store: TransitionStore,
    status: str,
    number: int,
    happened_at: str = "2024-12-18T17:00:00Z",
    *,
    peek: bool = False,
    **kw: str,
) -> Transition:
    key = {"project": PROJECT, "ref": "main", "workflow": "build", **kw}
    return store.record(status=status, pipeline_number=number, happened_at=happened_at, peek=peek, **key)


def edge(t: Transition) -> Transition:
    """The transition without its streak: what the rules below are about."""
    return Transition(t.kind, t.previous_status, t.previous_pipeline_number)


def test_first_event_of_a_workflow_is_first_seen(store: TransitionStore) -> None:
    assert edge(record(store, "failed", 7)) == Transition("first_seen", None, None)


@pytest.mark.parametrize(
    ("previous", "now", "kind"),
    [
        ("success", "success", "passing"),
        ("success", "failed", "broken"),
        ("success", "error", "broken"),
        ("success", "unauthorized", "broken"),
        ("success", "infrastructure_fail", "broken"),  # API statuses the webhook docs do not list
        ("failed", "success", "fixed"),
        ("error", "success", "fixed"),
        ("unauthorized", "success", "fixed"),
        ("failed", "failed", "still_failing"),
        ("error", "failed", "still_failing"),
        ("failed", "timedout", "still_failing"),
        ("SUCCESS", "Failed", "broken"),
    ],
)
def test_kind_compares_with_the_previous_terminal_status(
    store: TransitionStore, previous: str, now: str, kind: str
) -> None:
    record(store, previous, 1)
    assert edge(record(store, now, 2)) == Transition(kind, previous.lower(), 1)


@pytest.mark.integration
def test_a_peek_says_what_recording_would_say_and_writes_nothing(real_redis: redis.Redis) -> None:
    store = TransitionStore(real_redis)
    assert record(store, "success", 1, peek=True) == Transition("first_seen")
    assert real_redis.keys("cie:transition:*") == []
    record(store, "success", 1)
    state = real_redis.hgetall(transition_key(PROJECT, "main", "build"))
    peeked = record(store, "failed", 2, peek=True)
    assert edge(peeked) == Transition("broken", "success", 1) and peeked.failing_since_pipeline_number == 2
    assert record(store, "success", 0, peek=True) == Transition("stale", "success", 1)
    assert real_redis.hgetall(transition_key(PROJECT, "main", "build")) == state
    assert record(store, "failed", 2) == peeked


@pytest.mark.parametrize(
    "status", ["failed", "error", "unauthorized", "infrastructure_fail", "success", " Success ", "canceled"]
)
def test_is_failure_says_what_record_counts_as_broken(store: TransitionStore, status: str) -> None:
    record(store, "success", 1)
    assert is_failure(status) == (record(store, status, 2).kind == "broken")


def test_canceled_changes_nothing(store: TransitionStore) -> None:
    record(store, "success", 1)
    assert edge(record(store, "canceled", 2)) == Transition("canceled")
    assert edge(record(store, "failed", 3)) == Transition("broken", "success", 1)


def test_canceled_first_leaves_the_workflow_unseen(store: TransitionStore) -> None:
    assert record(store, "canceled", 1).kind == "canceled"
    assert record(store, "success", 2).kind == "first_seen"


def test_older_pipeline_is_stale_and_keeps_the_newer_state(store: TransitionStore) -> None:
    record(store, "failed", 5)
    assert edge(record(store, "success", 4)) == Transition("stale", "failed", 5)
    assert edge(record(store, "success", 6)) == Transition("fixed", "failed", 5)


def test_rerun_in_the_same_pipeline_counts_by_happened_at(store: TransitionStore) -> None:
    record(store, "failed", 5, "2024-12-18T17:00:00.100Z")
    assert edge(record(store, "success", 5, "2024-12-18T17:05:00Z")) == Transition("fixed", "failed", 5)
    assert edge(record(store, "failed", 5, "2024-12-18T17:04:59.999999Z")) == Transition("stale", "success", 5)


def test_same_pipeline_and_happened_at_with_another_status_is_stale(store: TransitionStore) -> None:
    record(store, "failed", 5, "2024-12-18T17:00:00Z")
    assert edge(record(store, "success", 5, "2024-12-18T17:00:00Z")) == Transition("stale", "failed", 5)


def test_happened_at_formats_compare_as_instants(store: TransitionStore) -> None:
    record(store, "failed", 5, "2024-12-18T17:00:00.5+00:00")
    assert record(store, "success", 5, "2024-12-18 17:00:00.400000001 +0000 UTC").kind == "stale"
    assert record(store, "success", 5, "2024-12-18T18:00:00.6+01:00").kind == "fixed"


def test_unreadable_happened_at_orders_first_within_its_pipeline(store: TransitionStore) -> None:
    record(store, "success", 5)
    assert record(store, "failed", 5, "not a time").kind == "stale"
    assert edge(record(store, "failed", 6, "not a time")) == Transition("broken", "success", 5)


def test_recording_the_same_event_again_returns_the_same_transition(store: TransitionStore) -> None:
    record(store, "success", 1)
    first = record(store, "failed", 2, "2024-12-18T17:10:00Z")
    assert record(store, "failed", 2, "2024-12-18T17:10:00Z") == first
    assert edge(first) == Transition("broken", "success", 1)
    assert edge(record(store, "failed", 3)) == Transition("still_failing", "failed", 2)
    fixed = record(store, "success", 4)
    assert record(store, "success", 4) == fixed  # its streak too
    assert (fixed.failing_since_pipeline_number, fixed.failed_pipelines) == (2, 2)


def test_first_seen_replays_as_first_seen(store: TransitionStore) -> None:
    assert record(store, "success", 1) == record(store, "success", 1) == Transition("first_seen")


@pytest.mark.parametrize(
    "other",
    [
        {"ref": "develop"},
        {"workflow": "deploy"},
        {"project": "bb/acme/api"},
        {"ref": "v1.0.0"},
    ],
)
def test_each_project_ref_and_workflow_has_its_own_state(store: TransitionStore, other: dict[str, str]) -> None:
    record(store, "success", 1)
    assert record(store, "failed", 2, **other).kind == "first_seen"
    assert record(store, "failed", 3).kind == "broken"


def test_a_streak_counts_failed_pipelines_from_the_one_that_broke_the_ref(store: TransitionStore) -> None:
    record(store, "success", 10)
    record(store, "failed", 11, "2024-12-18T11:00:00Z")
    record(store, "failed", 12)
    third = record(store, "error", 13)
    assert (third.kind, third.failing_since_pipeline_number, third.failed_pipelines) == ("still_failing", 11, 3)
    assert third.failing_since == "2024-12-18T11:00:00Z"
    fixed = record(store, "success", 14)
    assert (fixed.kind, fixed.failing_since_pipeline_number, fixed.failed_pipelines) == ("fixed", 11, 3)
    passing = record(store, "success", 15)
    assert (passing.failing_since_pipeline_number, passing.failed_pipelines) == (None, None)
    again = record(store, "failed", 16, "2024-12-18T16:00:00Z")
    assert (again.kind, again.failing_since_pipeline_number, again.failed_pipelines) == ("broken", 16, 1)


def test_a_first_seen_failure_starts_a_streak(store: TransitionStore) -> None:
    first = record(store, "failed", 7)
    assert (first.kind, first.failing_since_pipeline_number, first.failed_pipelines) == ("first_seen", 7, 1)
    assert record(store, "failed", 8).failed_pipelines == 2


def test_state_kept_before_streaks_counts_from_the_previous_failure() -> None:
    client = fakeredis.FakeRedis()
    key = transition_key(PROJECT, "main", "build")
    client.hset(
        key, mapping={"status": "failed", "pipeline_number": 5, "order": 1, "happened_at": "2024-12-18T05:00:00Z"}
    )
    later = record(TransitionStore(client), "failed", 6)
    assert (later.failing_since_pipeline_number, later.failing_since, later.failed_pipelines) == (
        5,
        "2024-12-18T05:00:00Z",
        2,
    )


def test_recorded_is_false_for_canceled_and_stale(store: TransitionStore) -> None:
    assert record(store, "success", 2).recorded
    assert not record(store, "failed", 1).recorded
    assert not record(store, "canceled", 3).recorded


def test_state_expires_after_the_ttl() -> None:
    client = fakeredis.FakeRedis()
    TransitionStore(client, ttl_seconds=3600).record(
        project=PROJECT,
        ref="main",
        workflow="build",
        status="success",
        pipeline_number=1,
        happened_at="2024-12-18T17:00:00Z",
    )
    assert 3590 < client.ttl(transition_key(PROJECT, "main", "build")) <= 3600


def test_default_ttl_is_ninety_days() -> None:
    client = fakeredis.FakeRedis()
    record(TransitionStore(client), "success", 1)
    assert client.ttl(transition_key(PROJECT, "main", "build")) == DEFAULT_TTL_SECONDS == 90 * 24 * 3600


@pytest.mark.parametrize("ttl", [0, -1])
def test_ttl_must_be_positive(ttl: int) -> None:
    with pytest.raises(ConfigurationError, match="TTL"):
        TransitionStore(fakeredis.FakeRedis(), ttl_seconds=ttl)


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (("gh/acme/api", "main", "build"), "cie:transition:gh%2Facme%2Fapi:main:build"),
        (("gh/acme/api", "feature/x:y", "rust/lint"), "cie:transition:gh%2Facme%2Fapi:feature%2Fx%3Ay:rust%2Flint"),
        (("p", "käse-ß", "测试"), "cie:transition:p:k%C3%A4se-%C3%9F:%E6%B5%8B%E8%AF%95"),
        (("p", "100%", "a b"), "cie:transition:p:100%25:a%20b"),
    ],
)
def test_keys_escape_slashes_colons_and_unicode(parts: tuple[str, str, str], key: str) -> None:
    assert transition_key(*parts) == key


def test_names_that_a_plain_join_would_confuse_get_separate_keys(store: TransitionStore) -> None:
    record(store, "success", 1, project="a:b", ref="c", workflow="d")
    assert record(store, "failed", 2, project="a", ref="b:c", workflow="d").kind == "first_seen"


def test_works_with_decoded_responses() -> None:
    store = TransitionStore(fakeredis.FakeRedis(decode_responses=True))
    record(store, "success", 1)
    assert edge(record(store, "failed", 2)) == Transition("broken", "success", 1)


def test_unreachable_redis_raises_redis_unavailable() -> None:
    store = TransitionStore(redis.Redis(port=1, retry=Retry(NoBackoff(), 0)))  # down, and no retries
    with pytest.raises(RedisUnavailable):
        record(store, "success", 1)


@pytest.mark.parametrize(
    "transition",
    [Transition("first_seen"), Transition("broken", "success", 41), Transition("fixed", "failed", 43, 41, "t", 3)],
)
def test_transition_round_trips_through_a_dict(transition: Transition) -> None:
    assert Transition.from_dict(transition.to_dict()) == transition


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.integration
def test_sequence_of_pipelines_on_the_real_redis(real_redis: redis.Redis) -> None:
    store = TransitionStore(real_redis)
    since_11 = {"failing_since_pipeline_number": 11, "failing_since": "2024-12-18T11:00:00Z"}
    since_15 = {"failing_since_pipeline_number": 15, "failing_since": "2024-12-18T15:00:00Z"}
    steps = [
        ("success", 10, "2024-12-18T10:00:00Z", Transition("first_seen")),
        ("failed", 11, "2024-12-18T11:00:00Z", Transition("broken", "success", 10, **since_11, failed_pipelines=1)),
        (
            "failed",
            13,
            "2024-12-18T13:00:00Z",
            Transition("still_failing", "failed", 11, **since_11, failed_pipelines=2),
        ),
        # 12 arrives after 13: no false "fixed", and 13 stays the state
        ("success", 12, "2024-12-18T12:00:00Z", Transition("stale", "failed", 13)),
        # a rerun of 13 that passes: the streak it ends
        ("success", 13, "2024-12-18T13:30:00Z", Transition("fixed", "failed", 13, **since_11, failed_pipelines=2)),
        # the first attempt of 13 delivered again, late
        ("failed", 13, "2024-12-18T13:00:00Z", Transition("stale", "success", 13)),
        ("canceled", 14, "2024-12-18T14:00:00Z", Transition("canceled")),
        ("canceled", 14, "2024-12-18T14:00:01Z", Transition("canceled")),  # N+1 deliveries (CANNY-CANCEL)
        ("error", 15, "2024-12-18T15:00:00Z", Transition("broken", "success", 13, **since_15, failed_pipelines=1)),
        (
            "unauthorized",
            16,
            "2024-12-18T16:00:00Z",
            Transition("still_failing", "error", 15, **since_15, failed_pipelines=2),
        ),
        (
            "success",
            17,
            "2024-12-18T17:00:00Z",
            Transition("fixed", "unauthorized", 16, **since_15, failed_pipelines=2),
        ),
        ("success", 18, "2024-12-18T18:00:00Z", Transition("passing", "success", 17)),
    ]
    for status, number, happened_at, expected in steps:
        assert record(store, status, number, happened_at) == expected, (status, number, happened_at)
    assert 0 < real_redis.ttl(transition_key(PROJECT, "main", "build")) <= DEFAULT_TTL_SECONDS


@pytest.mark.integration
def test_concurrent_workers_never_lose_an_update(redis_url: str) -> None:
    """Many clients record shuffled pipelines at once; the recorded ones must form one chain."""
    numbers = list(range(1, 301))
    random.Random(4).shuffle(numbers)
    clients = [redis.Redis.from_url(redis_url) for _ in range(8)]
    stores = [TransitionStore(client) for client in clients]

    def status(number: int) -> str:
        return "success" if number % 3 else "failed"

    def work(index: int) -> tuple[int, Transition]:
        number = numbers[index]
        return number, record(stores[index % len(stores)], status(number), number, f"2024-12-18T17:00:00.{number:06d}Z")

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        results = list(pool.map(work, range(len(numbers))))
    for client in clients:
        client.close()

    recorded = sorted((number, t) for number, t in results if t.recorded)
    stale = [(number, t) for number, t in results if not t.recorded]
    # Each write saw the write before it: two workers reading the same state would break the chain.
    previous = [(t.previous_pipeline_number, t.previous_status) for _, t in recorded]
    assert previous == [(None, None)] + [(number, status(number)) for number, _ in recorded[:-1]]
    assert recorded[-1][0] == max(numbers)
    assert all(t.kind == "stale" and (t.previous_pipeline_number or 0) > number for number, t in stale)


def test_the_states_index_is_scored_by_the_stores_clock_not_redis_time() -> None:
    """The console's branch grid orders states by their last write: the worker's clock gives it
    (Redis's TIME was one more command on every workflow-completed event)."""
    client = fakeredis.FakeRedis()
    store = TransitionStore(client, clock=FakeClock(now=1_234.9))
    record(store, "failed", 7)
    assert client.zscore(STATES_INDEX, transition_key(PROJECT, "main", "build")) == 1_234


def test_a_worker_sets_a_states_ttl_once_per_refresh_not_with_every_event(real_redis: redis.Redis) -> None:
    """A new state gets its TTL at once; a hot ref's is set again after REFRESH_SECONDS, not per event."""
    clock = FakeClock(now=1_000_000.0)
    store = TransitionStore(real_redis, ttl_seconds=3600, clock=clock, refresh=KeyRefresh())
    key = transition_key(PROJECT, "main", "build")
    real_redis.delete(key)
    store.record(project=PROJECT, ref="main", workflow="build", status="failed", pipeline_number=1,
                 happened_at="2024-12-18T17:00:00Z")  # fmt: skip
    assert 3590 < real_redis.ttl(key) <= 3600
    real_redis.expire(key, 100)  # to see whether the next events set it again
    for n in (2, 3):
        store.record(project=PROJECT, ref="main", workflow="build", status="failed", pipeline_number=n,
                     happened_at="2024-12-18T17:00:00Z")  # fmt: skip
    assert real_redis.ttl(key) <= 100
    clock.advance(REFRESH_SECONDS)
    store.record(project=PROJECT, ref="main", workflow="build", status="success", pipeline_number=4,
                 happened_at="2024-12-18T17:00:00Z")  # fmt: skip
    assert 3590 < real_redis.ttl(key) <= 3600


def test_a_state_made_again_within_a_refresh_gets_its_ttl(real_redis: redis.Redis) -> None:
    clock = FakeClock(now=1_000_000.0)
    store = TransitionStore(real_redis, ttl_seconds=3600, clock=clock, refresh=KeyRefresh())
    key = transition_key(PROJECT, "main", "build")
    record(store, "failed", 1)
    real_redis.delete(key)  # gone (deleted by hand) while this process thinks it fresh
    record(store, "failed", 2)
    assert 3590 < real_redis.ttl(key) <= 3600
