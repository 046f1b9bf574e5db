"""R2 and R7: Redis goes away; nothing accepted is lost, nothing refused is lost once retried.

Both run redis-server with AOF (appendfsync always), as DESIGN.md asks of production: without
persistence a restarted Redis has forgotten everything by definition.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import Queue

from service.simulators.sink import Received
from tests.reliability.conftest import FAST, PATHS
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

STREAM, STOP_AT, START_AT = 60, 20, 40


def test_redis_stopped_mid_stream_answers_only_202_200_503_and_every_event_is_delivered_once(scenario) -> None:
    system = scenario(appendonly=True)
    web = system.start_web()
    workers = system.start_workers(2)
    system.wait_workers(workers)  # running workers ride out the outage; one still starting would exit
    payloads = system.events(STREAM)

    started = time.monotonic()
    refused = []
    for i, payload in enumerate(payloads):
        if i == STOP_AT:
            system.redis.stop()
        if i == START_AT:
            system.redis.start()
        response = system.post(payload)
        assert response.status_code in (200, 202, 503), response.text
        assert "Traceback" not in response.text
        if response.status_code == 503:
            assert response.json()["error_code"] == "redis_unavailable"
            assert int(response.headers["retry-after"]) > 0
            refused.append(payload)
    assert refused, "a stopped Redis refuses deliveries"

    system.retry_refused(refused)

    system.wait_delivered(payloads, timeout=60)
    system.assert_delivered_once(payloads)
    assert "Traceback" not in web.output()
    assert all(w.process is not None and w.process.poll() is None for w in workers), "workers ride out the outage"
    print(
        f"R2: {STREAM} events, Redis down for {START_AT - STOP_AT} of them; delivered once each "
        f"in {time.monotonic() - started:.1f} s"
    )


def test_redis_away_longer_than_a_lease_as_posts_land_still_delivers_each_event_once(scenario) -> None:
    """The chat answers a post just as Redis goes away, for longer than a lease: the worker holds
    the post's record until Redis is back, and no process reaps the jobs whose leases lapsed
    meanwhile before their own process renewed them (a second run would post again)."""
    system = scenario(appendonly=True)
    system.start_web()
    workers = system.start_workers(2)
    system.wait_workers(workers)
    payloads = system.events(12)
    stopped = threading.Event()

    def stop_redis_as_the_first_post_lands(received: Received) -> None:
        if received.path == PATHS["audit"] and not stopped.is_set():
            stopped.set()
            system.redis.stop()  # before the chat's 200 goes back to the worker

    system.sink.on_receive = stop_redis_as_the_first_post_lands
    statuses = system.post_all(payloads)
    wait_until(stopped.is_set, "a post landing", timeout=60)
    time.sleep(2 * int(FAST["WORKER_LEASE_SECONDS"]))  # the outage itself: past every lease and lock
    system.sink.on_receive = None
    system.redis.start()
    assert set(statuses) <= {202, 503}
    system.retry_refused([p for p, status in zip(payloads, statuses, strict=True) if status == 503])

    system.wait_delivered(payloads, timeout=60)
    system.assert_delivered_once(payloads)
    assert any("redis_outage_ridden_out" in worker.output() for worker in workers)
    assert all(w.process is not None and w.process.poll() is None for w in workers), "workers ride out the outage"
    assert not any("Traceback" in line for w in workers for line in w.output().splitlines() if not line.startswith("{"))


def test_events_queued_before_a_redis_restart_are_all_delivered_after_it(scenario) -> None:
    system = scenario(appendonly=True)
    system.start_web()
    payloads = system.events(50)
    assert system.post_all(payloads) == [202] * len(payloads)  # no worker yet: all of them wait in Redis

    started = time.monotonic()
    assert system.redis.process is not None
    system.redis.process.kill()  # no shutdown save: only the AOF, fsynced per write, survives
    system.redis.process.wait(timeout=10)
    system.redis.start()
    with redis.Redis.from_url(system.redis.url) as client:
        assert Queue("events", connection=client).count == len(payloads)

    system.start_workers(2)
    system.wait_delivered(payloads, timeout=60)
    system.assert_delivered_once(payloads)
    print(
        f"R7: {len(payloads)} queued events survived a SIGKILLed Redis; delivered in {time.monotonic() - started:.1f} s"
    )
