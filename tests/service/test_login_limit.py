"""Failed logins per client address: BURST, then one per REFILL_SECONDS."""

from __future__ import annotations

from service.login_limit import BURST, LoginLimit
from tests.clock import FakeClock


def test_failed_logins_are_rate_limited_per_client() -> None:
    clock = FakeClock()
    limit = LoginLimit(clock=clock)
    for _ in range(BURST):
        assert limit.blocked_for("10.0.0.1") == 0
        limit.failed("10.0.0.1")
    assert limit.blocked_for("10.0.0.1") > 0
    assert limit.blocked_for("10.0.0.2") == 0  # another client is not held back
    clock.advance(31)
    assert limit.blocked_for("10.0.0.1") == 0
