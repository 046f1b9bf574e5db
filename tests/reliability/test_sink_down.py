"""R5: the chat service is down; deliveries wait it out, or, past the retry budget, become
dead letters that a replay posts exactly once.

The outage lasts until every delivery was refused REFUSALS times (its first attempt, then
retries on the backoff), not a fixed 60 s: the same path, walked on any machine, in the
seconds it takes. Backoff runs from 0.5 s capped at 2 s (instead of 5 s and 600 s) so
deliveries follow the sink's recovery closely.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis

from config.settings import Settings
from tests.waiting import wait_until
from workers.delivery.dead_letters import DeadLetters
from workers.delivery.replay import replay_dead_letter

pytestmark = pytest.mark.e2e

REFUSALS = 3
SHORT_BUDGET = {"DELIVERY_RETRY_BUDGET_SECONDS": "4"}


def test_a_sink_down_for_a_while_gets_every_message_once_after_it_recovers(scenario) -> None:
    system = scenario()
    system.start_web()
    system.start_workers(2)
    payloads = system.events(20)
    pending = sum(len(ids) for ids in system.expected(payloads).values())
    down = system.sink.add_fault(kind="down", path="/hooks/*")

    def refused_enough() -> bool:
        refused = Counter((r.path, r.body["event_id"]) for r in system.sink.requests() if r.status == 503)
        return len(refused) == pending and min(refused.values()) >= REFUSALS

    started = time.monotonic()
    assert system.post_all(payloads) == [202] * len(payloads)
    wait_until(refused_enough, f"every delivery refused {REFUSALS} times while the sink is down", 60)
    system.sink.clear_faults()
    down_for = time.monotonic() - started
    waited = system.wait_delivered(payloads, timeout=60)
    system.assert_delivered_once(payloads)
    print(
        f"R5: {len(payloads)} events, sink down {down_for:.1f} s ({down.fired} refused posts); all "
        f"delivered {waited:.1f} s after it recovered"
    )


def test_past_the_retry_budget_deliveries_are_dead_lettered_and_a_replay_posts_each_once(scenario) -> None:
    system = scenario()
    system.start_web()
    system.start_workers(2, **SHORT_BUDGET)
    payloads = system.events(10)
    expected = system.expected(payloads)
    pending = sum(len(ids) for ids in expected.values())
    system.sink.add_fault(kind="down", path="/hooks/*")

    started = time.monotonic()
    assert system.post_all(payloads) == [202] * len(payloads)
    settings = Settings.from_environ(system.env(**SHORT_BUDGET))
    client = redis.Redis.from_url(system.redis.url)
    letters = DeadLetters(client, ttl=settings.enriched_event_ttl_seconds)
    dead = wait_until(lambda: len(letters.list(limit=1000)) == pending and letters.list(limit=1000), "dead letters")
    dead_after = time.monotonic() - started
    assert {letter.reason for letter in dead} == {"retry_budget_exhausted"}
    assert {(letter.handler, letter.event_id) for letter in dead} == {
        (handler, event_id) for handler, ids in expected.items() for event_id in ids
    }
    assert not system.sink.delivered(), "nothing got through while the sink was down"

    system.sink.clear_faults()
    for letter in dead:
        assert replay_dead_letter(client, letter.delivery_id, settings=settings) is not None
        assert replay_dead_letter(client, letter.delivery_id, settings=settings) is None, "a letter replays once"
    system.wait_delivered(payloads, timeout=30)
    system.assert_delivered_once(payloads)
    assert letters.list(limit=1000) == []
    client.close()
    print(f"R5: {pending} deliveries dead-lettered {dead_after:.1f} s after a 4 s budget; replayed, posted once each")
