"""R4: CircleCI's API throttles and fails, then recovers; or refuses the token for good.

The outage has two phases: 429s (Retry-After 6, longer than a job waits in place, so every job
defers), then 500s. Each lasts until the API refused at least one call per event (the deferred
jobs come back into the 500s), not a fixed 15 s: the same path on any machine, in the seconds it takes.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import PATHS
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

EVENTS = 20
# The API client retries inside the job for up to 15 s before the job defers: give it room.
LONG_JOBS = {"EVENT_JOB_TIMEOUT_SECONDS": "60"}


def lift(simulator, fault) -> None:
    with simulator.lock:
        simulator.faults.remove(fault)


def test_429s_then_500s_for_a_while_delay_but_never_drop_an_event(scenario) -> None:
    system = scenario()
    system.start_web(**LONG_JOBS)
    system.start_workers(2, **LONG_JOBS)
    payloads = system.events(EVENTS)

    started = time.monotonic()
    throttle = system.simulator.add_fault(path="*", times=None, status=429, retry_after=6)
    assert system.post_all(payloads) == [202] * EVENTS
    wait_until(lambda: throttle.fired >= EVENTS, "a 429 per event", 60)
    lift(system.simulator, throttle)
    failing = system.simulator.add_fault(path="*", times=None, status=500)
    wait_until(lambda: failing.fired >= EVENTS, "a 500 per event", 60)
    throttled_for = time.monotonic() - started
    lift(system.simulator, failing)

    system.wait_delivered(payloads, timeout=120)
    system.assert_delivered_once(payloads)
    assert throttle.fired > 0 and failing.fired > 0
    enrichment = [r.body["enrichment"] for r in system.sink.delivered(PATHS["audit"])]
    assert all(e["complete"] for e in enrichment), "after the outage every event is enriched in full"
    print(
        f"R4: {EVENTS} events through {throttled_for:.0f} s of API 429s ({throttle.fired}) and 500s "
        f"({failing.fired}); delivered once each, complete, in {time.monotonic() - started:.1f} s"
    )


def test_a_permanent_401_delivers_every_event_marked_incomplete(scenario) -> None:
    system = scenario()
    system.start_web()
    system.start_workers(2)
    payloads = system.events(10)
    refused = system.simulator.add_fault(path="*", times=None, status=401)

    started = time.monotonic()
    assert system.post_all(payloads) == [202] * len(payloads)
    system.wait_delivered(payloads, timeout=60)
    system.assert_delivered_once(payloads)
    assert refused.fired >= len(payloads)
    for received in system.sink.delivered(PATHS["audit"]):
        enrichment = received.body["enrichment"]
        assert enrichment["complete"] is False
        assert enrichment["reason"].startswith("circleci_unauthorized")
    print(
        f"R4: {len(payloads)} events against a permanent 401; delivered once each, marked incomplete, "
        f"in {time.monotonic() - started:.1f} s"
    )
