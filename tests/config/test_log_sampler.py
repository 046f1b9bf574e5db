"""One log line per key and interval, carrying the count of the lines left out."""

from __future__ import annotations

from config.log_sampler import LogSampler
from tests.clock import FakeClock


def test_the_first_line_is_written_then_the_rest_of_the_interval_is_counted() -> None:
    clock = FakeClock()
    sampler = LogSampler(interval=60, clock=clock)
    assert [sampler.admit("1.2.3.4 signature_invalid") for _ in range(5)] == [0, None, None, None, None]
    clock.advance(59.9)
    assert sampler.admit("1.2.3.4 signature_invalid") is None
    clock.advance(0.1)
    assert sampler.admit("1.2.3.4 signature_invalid") == 5
    assert sampler.admit("1.2.3.4 signature_invalid") is None
    clock.advance(600)
    assert sampler.admit("1.2.3.4 signature_invalid") == 1


def test_keys_are_sampled_apart() -> None:
    sampler = LogSampler(interval=60, clock=FakeClock())
    assert sampler.admit("1.2.3.4 signature_invalid") == 0
    assert sampler.admit("1.2.3.4 rate_limited") == 0
    assert sampler.admit("5.6.7.8 signature_invalid") == 0
    assert sampler.admit("1.2.3.4 signature_invalid") is None


def test_memory_is_bounded_by_forgetting_the_oldest_key() -> None:
    clock = FakeClock()
    sampler = LogSampler(interval=60, max_keys=100, clock=clock)
    for i in range(1000):
        assert sampler.admit(f"10.0.{i // 256}.{i % 256} signature_invalid") == 0
    assert len(sampler) == 100
    assert sampler.admit("10.0.3.231 signature_invalid") is None  # the last one seen is remembered
    assert sampler.admit("10.0.0.0 signature_invalid") == 0  # the first was forgotten: written again
