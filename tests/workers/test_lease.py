"""Leases: a running job's claim lasts seconds and is renewed, in one command, while it runs."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from workers.lease import Leases

pytestmark = pytest.mark.integration
KEY = "rq:wip:events"


def test_renewing_pushes_every_held_claim_one_lease_further_in_one_command(redis: Redis) -> None:
    leases = Leases(redis, KEY, seconds=10)
    redis.zadd(KEY, {"a:1": time.time() + 1, "b:2": time.time() + 1})
    leases.hold("a:1", 300)
    leases.hold("b:2", 300)
    before = redis.info("commandstats")["cmdstat_zadd"]["calls"]
    assert leases.renew() == 2
    assert redis.info("commandstats")["cmdstat_zadd"]["calls"] == before + 1
    assert all(time.time() + 9 < score <= time.time() + 10 for _, score in redis.zrange(KEY, 0, -1, withscores=True))


def test_a_claim_the_job_released_is_not_written_back(redis: Redis) -> None:
    leases = Leases(redis, KEY, seconds=10)
    leases.hold("a:1", 300)  # its job ended and removed the entry, the lease thread had not heard yet
    leases.renew()
    assert redis.zcard(KEY) == 0


def test_a_job_past_its_timeout_is_no_longer_renewed(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    leases = Leases(redis, KEY, seconds=3)
    redis.zadd(KEY, {"stuck:1": time.time() + 3})
    leases.hold("stuck:1", 1)  # a one-second job
    clock = time.monotonic() + 1 + 3 + 0.1  # past its timeout and one lease more
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    assert leases.renew() == 0


def test_dropped_claims_are_not_renewed(redis: Redis) -> None:
    leases = Leases(redis, KEY, seconds=10)
    leases.hold("a:1", 300)
    leases.drop("a:1")
    assert leases.held() == [] and leases.renew() == 0
