"""The workers' shared CircleCI API budget, on the real redis-server."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from config.clock import SystemClock
from config.errors import CircleCIRateLimited
from tests.clock import FakeClock
from workers.circleci.budget import HOLD_SECONDS, KEY, ApiBudget
from workers.token_bucket import tokens_left


class SleepsKept(SystemClock):
    """The real clock (the bucket refills by Redis's time), keeping the sleeps asked of it."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float, /) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


def test_a_burst_is_allowed_then_short_waits_are_slept(redis_url: str) -> None:
    clock = SleepsKept()
    slept = clock.sleeps
    budget = ApiBudget(redis.Redis.from_url(redis_url), per_second=10, burst=3, batch=2, clock=clock)
    for _ in range(3):
        budget.take()
    assert slept == []
    budget.take()
    assert slept and 0 < slept[0] <= 0.1 and sum(slept) < 0.2


def test_processes_share_the_budget(redis_url: str) -> None:
    """Two processes (two budgets) together get no more than the burst."""
    client = redis.Redis.from_url(redis_url)
    a = ApiBudget(client, per_second=0.01, burst=4, batch=2, max_wait=0.5)
    b = ApiBudget(client, per_second=0.01, burst=4, batch=2, max_wait=0.5)
    a.take()
    b.take()
    a.take()
    b.take()
    with pytest.raises(CircleCIRateLimited) as caught:
        a.take()
    assert caught.value.retry_after > 0.5


def test_tokens_are_taken_a_few_at_a_time(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    budget = ApiBudget(client, per_second=0.01, burst=10, batch=4)
    budget.take()
    remaining = tokens_left(client, KEY)
    assert 5.9 < remaining < 6.1  # four taken in one call, three kept locally
    for _ in range(3):
        budget.take()
    assert 5.9 < tokens_left(client, KEY) < 6.1


@pytest.mark.parametrize(
    ("per_second", "burst", "batch"),
    [(10, 20, 5), (1_000_000, 1_000_000, 10), (1, 3, 1), (100, 8, 2)],
)
def test_tokens_are_taken_in_batches_that_follow_the_budget(per_second: float, burst: int, batch: int) -> None:
    assert ApiBudget(fakeredis.FakeRedis(), per_second=per_second, burst=burst).batch == batch


def test_tokens_not_spent_within_a_second_are_dropped_not_spent_late(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = FakeClock()
    budget = ApiBudget(client, per_second=0.01, burst=10, batch=4, clock=clock)
    budget.take()
    clock.advance(HOLD_SECONDS)
    budget.take()  # the three kept were too old: four more from Redis
    assert 1.9 < tokens_left(client, KEY) < 2.1
