"""R1: CircleCI delivers each event several times, concurrently; each handler posts it once."""

from __future__ import annotations

import time

import pytest
import redis

pytestmark = pytest.mark.e2e

EVENTS, COPIES = 100, 3


def test_every_event_delivered_three_times_concurrently_is_queued_once_and_posted_once(scenario) -> None:
    system = scenario()
    system.start_web()
    system.start_workers(2)
    payloads = system.events(EVENTS)

    started = time.monotonic()
    answers = system.post_all(payloads, copies=COPIES, concurrency=24)

    assert answers.count(202) == EVENTS, "one delivery of each event is queued"
    assert answers.count(200) == EVENTS * (COPIES - 1), "the others are answered as duplicates"
    with redis.Redis.from_url(system.redis.url) as client:
        assert len(client.keys("cie:seen:*")) == EVENTS
    system.wait_delivered(payloads, timeout=60)
    system.assert_delivered_once(payloads)
    print(f"R1: {EVENTS} events x {COPIES} posts -> delivered once each in {time.monotonic() - started:.1f} s")
