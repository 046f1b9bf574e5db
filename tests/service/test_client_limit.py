"""Per-client token buckets in the web process: burst, refill, the signature penalty, bounded memory."""

from __future__ import annotations

import pytest

from service.client_limit import ClientLimit
from tests.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_client_gets_its_burst_then_waits_for_the_next_token(clock: FakeClock) -> None:
    limit = ClientLimit(burst=3, per_second=2, clock=clock)
    assert [limit.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take("a") == pytest.approx(0.5)
    clock.advance(0.5)
    assert limit.take("a") == 0.0


def test_tokens_refill_up_to_the_burst_and_no_further(clock: FakeClock) -> None:
    limit = ClientLimit(burst=2, per_second=1, clock=clock)
    limit.take("a")
    clock.advance(3600)
    assert [limit.take("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_each_client_has_its_own_bucket(clock: FakeClock) -> None:
    limit = ClientLimit(burst=1, per_second=1, clock=clock)
    assert limit.take("a") == 0.0
    assert limit.take("a") > 0
    assert limit.take("b") == 0.0


def test_a_charge_is_a_debt_paid_by_waiting(clock: FakeClock) -> None:
    limit = ClientLimit(burst=20, per_second=10, clock=clock)
    assert limit.take("a") == 0.0
    limit.charge("a", 30)  # 19 - 30: 11 tokens owed
    assert limit.take("a") == pytest.approx(1.2)
    clock.advance(1.2)
    assert limit.take("a") == 0.0


@pytest.mark.parametrize("clients", [10, 10_000])
def test_memory_is_bounded_and_the_least_recently_seen_client_goes_first(clock: FakeClock, clients: int) -> None:
    limit = ClientLimit(burst=1, per_second=0.001, max_clients=clients, clock=clock)
    limit.take("first")
    for i in range(clients * 3):
        limit.take(f"10.0.{i // 256}.{i % 256}")
        if i % 100 == 0:
            assert limit.take("first") > 0  # seen again: kept, still empty
    assert len(limit) == clients
    limit.take("recent")
    for i in range(clients - 1):
        limit.take(f"192.168.{i // 256}.{i % 256}")
    assert limit.take("recent") > 0  # among the last `clients` seen: still there
