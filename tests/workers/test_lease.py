"""Leases: a running job's claim lasts seconds and is renewed, in one command, while it runs."""

from __future__ import annotations

import pytest
from redis import Redis

from tests.clock import FakeClock
from workers.lease import Leases

pytestmark = pytest.mark.integration
KEY = "rq:wip:events"


def test_renewing_pushes_every_held_claim_one_lease_further_in_one_command(redis: Redis) -> None:
    clock = FakeClock()
    leases = Leases(redis, KEY, seconds=10, clock=clock)
    redis.zadd(KEY, {"a:1": clock.now() + 1, "b:2": clock.now() + 1})
    leases.hold("a:1", 300)
    leases.hold("b:2", 300)
    before = redis.info("commandstats")["cmdstat_zadd"]["calls"]
    assert leases.renew() == 2
    assert redis.info("commandstats")["cmdstat_zadd"]["calls"] == before + 1
    assert [score for _, score in redis.zrange(KEY, 0, -1, withscores=True)] == [clock.now() + 10] * 2


def test_a_claim_the_job_released_is_not_written_back(redis: Redis) -> None:
    leases = Leases(redis, KEY, seconds=10)
    leases.hold("a:1", 300)  # its job ended and removed the entry, the lease thread had not heard yet
    leases.renew()
    assert redis.zcard(KEY) == 0


def test_a_job_past_its_timeout_is_no_longer_renewed(redis: Redis) -> None:
    clock = FakeClock()
    leases = Leases(redis, KEY, seconds=3, clock=clock)
    redis.zadd(KEY, {"stuck:1": clock.now() + 3})
    leases.hold("stuck:1", 1)  # a one-second job
    clock.advance(1 + 3 - 0.1)  # within its timeout and one lease more
    assert leases.renew() == 1
    clock.advance(0.2)  # past them
    assert leases.renew() == 0


def test_dropped_claims_are_not_renewed(redis: Redis) -> None:
    leases = Leases(redis, KEY, seconds=10)
    leases.hold("a:1", 300)
    leases.drop("a:1")
    assert leases.held() == [] and leases.renew() == 0
