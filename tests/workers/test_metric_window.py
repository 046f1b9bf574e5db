"""The alerting counters, counted per minute in Redis: what a window holds, and how long they are kept."""

from __future__ import annotations

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, Counter

from workers import metric_window
from workers.event_index import KeyRefresh

DEAD = "circleci_events_dead_letters_total"
NOW = 1_800_000_030.0  # 30 s into a minute


def counted(redis: fakeredis.FakeRedis, at: float, n: int = 1, **labels: str) -> None:
    with redis.pipeline() as pipe:
        metric_window.count(pipe, DEAD, labels, at, n)
        pipe.execute()


def test_a_window_adds_up_the_minutes_it_touches_per_label_set() -> None:
    redis = fakeredis.FakeRedis()
    counted(redis, NOW, reason="rejected")
    counted(redis, NOW - 120, 2, reason="rejected")
    counted(redis, NOW - 300, reason="retry_budget_exhausted")
    counted(redis, NOW - 16 * 60, 5, reason="rejected")  # before the window
    assert metric_window.increase(redis, DEAD, 15 * 60, NOW) == {
        (("reason", "rejected"),): 3,
        (("reason", "retry_budget_exhausted"),): 1,
    }


def test_the_oldest_minute_of_a_window_counts_whole() -> None:
    redis = fakeredis.FakeRedis()
    counted(redis, NOW - 60, reason="x")  # 30 s into the minute that began 90 s ago
    assert metric_window.increase(redis, DEAD, 75, NOW) == {(("reason", "x"),): 1}
    assert metric_window.increase(redis, DEAD, 20, NOW) == {}


def test_counts_expire_after_the_longest_window() -> None:
    redis = fakeredis.FakeRedis()
    counted(redis, NOW, reason="x")
    (key,) = redis.keys(f"{metric_window.PREFIX}*")
    assert 0 < redis.ttl(key) <= metric_window.TTL_SECONDS


def test_only_the_counters_the_rules_watch_are_counted() -> None:
    with pytest.raises(ValueError, match="COUNTED"):
        metric_window.count(fakeredis.FakeRedis().pipeline(), "circleci_events_deliveries_total", {}, NOW)


def test_a_counters_series_is_its_name_with_total() -> None:
    counter = Counter("circleci_events_dead_letters", "d", ["reason"], registry=CollectorRegistry())
    assert metric_window.series(counter) == DEAD


def test_a_worker_process_sets_a_minutes_ttl_with_its_first_count_of_it_only() -> None:
    """One HINCRBY per count; the EXPIRE once per minute's key (it was one more command per event)."""
    redis, refresh = fakeredis.FakeRedis(), KeyRefresh()
    queued: list[list[str]] = []
    for at in (NOW, NOW + 10, NOW + 20, NOW + 40):  # the last one is the next minute's
        with redis.pipeline() as pipe:
            metric_window.count(pipe, DEAD, {"reason": "rejected"}, at, refresh=refresh)
            queued.append([str(command[0][0]).lower() for command in pipe.command_stack])
            pipe.execute()
    assert queued == [["hincrby", "expire"], ["hincrby"], ["hincrby"], ["hincrby", "expire"]]
    first_minute = metric_window.key(DEAD, int(NOW // metric_window.MINUTE))
    assert 0 < redis.ttl(first_minute) <= metric_window.TTL_SECONDS
    assert metric_window.increase(redis, DEAD, 15 * 60, NOW + 40) == {(("reason", "rejected"),): 4}
