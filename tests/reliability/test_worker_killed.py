"""R3: a worker SIGKILLed mid-enrichment and another mid-send; every event is still posted once.

A worker process runs WORKER_CONCURRENCY jobs at once (here 4), so a kill takes several jobs
down. RQ's maintenance finds a job whose worker died once its timeout and a grace have passed
and retries it (the job's Retry); a job a worker had taken but not started comes back from
RQ's intermediate list after a minute (RQ's own bound). The project's idempotency
(`cie:seen`, delivery job ids derived from the delivery, `cie:delivered` SET NX, the send
lock) keeps the retries from doubling.

The kill points are chosen, and that is the honest limit of "once": a worker killed after the
chat service accepted a post but before `cie:delivered` is written posts again when its job is
retried (at-least-once in that window, some milliseconds wide per send in flight; no chat API
offers an idempotency key to close it). So at each kill every job in flight is at a chosen
point: the first worker's are all waiting for the API, and every post the second one sends is
held and then refused (503), so none of its sends had been accepted when it died.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import wait_until

pytestmark = pytest.mark.e2e

EVENTS = 10
CONCURRENCY = 4
# the slowest recovery: a job taken but not started waits a minute in RQ's intermediate list
RECOVERY_TIMEOUT = 150


def test_workers_killed_mid_enrichment_and_mid_send_still_post_every_event_once(scenario) -> None:
    system = scenario()
    system.start_web()
    # every job page is slow until the kill: each of the first worker's jobs waits for the API
    slow_api = system.simulator.add_fault(path="/workflow/*/job", status=None, delay=4.0, times=None)
    first = system.start_workers(1, WORKER_CONCURRENCY=str(CONCURRENCY))[0]
    payloads = system.events(EVENTS)
    assert system.post_all(payloads) == [202] * EVENTS
    started = time.monotonic()

    wait_until(lambda: slow_api.fired == CONCURRENCY, "every thread asking for a workflow's jobs", 20, 0.01)
    system.kill(first)  # four enrichments in the middle of an API call
    system.simulator.clear_faults()

    # every post is held 3 s and then refused: a kill cannot catch one that was accepted
    refusing = system.sink.add_fault(path="*", status=503, delay=3.0, times=None)
    second = system.start_workers(1, WORKER_CONCURRENCY=str(CONCURRENCY))[0]
    wait_until(
        lambda: any(r.status == 0 for r in system.sink.requests()),
        "a post in flight",
        timeout=20,
        step=0.01,
    )
    system.kill(second)  # in the middle of its deliveries: sent, not yet answered
    system.sink.clear_faults()
    assert refusing.fired >= 1
    assert system.sink.delivered() == [], "no post was accepted before the second kill"

    system.start_workers(1, WORKER_CONCURRENCY=str(CONCURRENCY))
    waited = system.wait_delivered(payloads, timeout=RECOVERY_TIMEOUT)
    system.assert_delivered_once(payloads)
    print(
        f"R3: {EVENTS} events, 2 workers ({CONCURRENCY} jobs at once) SIGKILLed; delivered once each "
        f"{time.monotonic() - started:.1f} s after the first kill ({waited:.1f} s after the last worker started); "
        f"{refusing.fired} posts refused"
    )
