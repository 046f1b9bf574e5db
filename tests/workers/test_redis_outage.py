"""Riding out a Redis outage: the record of a post already sent waits for Redis instead of failing."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from structlog.testing import capture_logs

from tests.clock import FakeClock
from workers.redis_outage import RETRY_MAX_SECONDS, ride_out


class Flaky:
    """A write that fails `failures` times (with `error`), then answers how often it was made."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


def test_a_write_redis_answers_is_made_once_without_a_word() -> None:
    clock = FakeClock()
    with capture_logs() as logs:
        assert ride_out(Flaky(0), what="a record", clock=clock) == 1
    assert clock.sleeps == [] and logs == []


def test_a_write_is_made_again_with_growing_waits_until_redis_answers() -> None:
    clock, write = FakeClock(), Flaky(6)
    with capture_logs() as logs:
        assert ride_out(write, what="the delivery's success", clock=clock) == 7
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, RETRY_MAX_SECONDS, RETRY_MAX_SECONDS]
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("redis_outage_waiting", "warning"),
        ("redis_outage_ridden_out", "info"),
    ]
    assert logs[0]["what"] == "the delivery's success"
    assert "Connection refused" in logs[0]["error"]
    assert logs[1]["waited_seconds"] == pytest.approx(sum(clock.sleeps), abs=0.05)


def test_a_timeout_is_waited_out_like_a_refused_connection() -> None:
    clock = FakeClock()
    assert ride_out(Flaky(1, RedisTimeoutError("Timeout reading from socket")), what="x", clock=clock) == 2
    assert clock.sleeps == [0.1]


def test_past_its_limit_the_last_error_is_raised_and_said() -> None:
    clock, write = FakeClock(), Flaky(10_000)
    with capture_logs() as logs, pytest.raises(RedisConnectionError):
        ride_out(write, what="a thread's message", clock=clock, limit=30)
    assert 30 <= sum(clock.sleeps) <= 30 + RETRY_MAX_SECONDS
    assert [line["event"] for line in logs] == ["redis_outage_waiting", "redis_outage_gave_up"]
    assert logs[-1]["log_level"] == "error" and logs[-1]["waited_seconds"] >= 30


def test_a_write_redis_refuses_is_not_made_again() -> None:
    """Not an outage: an answer (OOM, a wrong type) that another try would only repeat."""
    clock, write = FakeClock(), Flaky(1, ResponseError("OOM command not allowed"))
    with pytest.raises(ResponseError):
        ride_out(write, what="a record", clock=clock)
    assert write.calls == 1 and clock.sleeps == []
