"""R3: a worker SIGKILLed mid-enrichment and another mid-send; every event is still posted once.

RQ's maintenance finds a job whose worker died once its timeout and a grace have passed and
retries it (the job's Retry); the project's idempotency (`cie:seen`, delivery job ids derived
from the delivery, `cie:delivered` SET NX, the send lock) keeps the retry from doubling.

The kill points are chosen, and that is the honest limit of "once": a worker killed after the
chat service accepted a post but before `cie:delivered` is written posts again when its job is
retried (at-least-once in that window, some milliseconds wide; no chat API offers an
idempotency key to close it). So the send killed here is one still in flight that the sink
does not accept: it answers 503 to the dead connection.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import PATHS, wait_until

pytestmark = pytest.mark.e2e

EVENTS = 10


def test_workers_killed_mid_enrichment_and_mid_send_still_post_every_event_once(scenario) -> None:
    system = scenario()
    system.start_web()
    first = system.start_workers(1)[0]
    slow_api = system.simulator.add_fault(path="/workflow/*/job", status=None, delay=4.0, times=1)
    payloads = system.events(EVENTS)
    assert system.post_all(payloads) == [202] * EVENTS
    started = time.monotonic()

    wait_until(lambda: slow_api.fired == 1, "a workflow's jobs asked for (slowly)", timeout=20, step=0.01)
    system.kill(first)  # in the middle of enrichment: the API call is in flight

    in_flight = system.sink.add_fault(path=PATHS["audit"], status=503, delay=3.0, times=1)
    second = system.start_workers(1)[0]
    wait_until(
        lambda: any(r.status == 0 for r in system.sink.requests(PATHS["audit"])),
        "a post in flight",
        timeout=20,
        step=0.01,
    )
    system.kill(second)  # in the middle of a delivery: the post is sent, not yet answered
    assert in_flight.fired == 1

    system.start_workers(1)
    waited = system.wait_delivered(payloads, timeout=90)
    system.assert_delivered_once(payloads)
    refused = [r for r in system.sink.requests(PATHS["audit"]) if r.status == 503]
    assert len(refused) == 1, "the killed send reached the sink and was not accepted"
    print(
        f"R3: {EVENTS} events, 2 workers SIGKILLed; delivered once each {time.monotonic() - started:.1f} s "
        f"after the first kill ({waited:.1f} s after the last worker started)"
    )
