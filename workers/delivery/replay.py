"""Replays: an operator queues deliveries again, from a dead letter or from an event's record.

The job renders from the stored enriched event with the routes and templates the worker has
then. It posts once: a success already recorded makes it (and any later replay) a no-op,
unless the replay is forced.
"""

from __future__ import annotations

import uuid

import structlog
from redis import Redis

from config.clock import SYSTEM_CLOCK, Clock
from config.settings import Settings
from workers.context import current
from workers.delivery.dead_letters import DeadLetters
from workers.delivery.jobs import delivery_id_of, enqueue_delivery, job_id_of
from workers.store import EventStore

log = structlog.get_logger("workers.delivery")


def replay_dead_letter(
    redis: Redis, delivery_id: str, *, settings: Settings | None = None, clock: Clock | None = None
) -> str | None:
    """Queue a dead letter's delivery again and remove the letter; None when there is none.

    The job renders from the stored enriched event with the routes and templates the worker
    has then. It posts once: a success already recorded makes it (and any later replay) a no-op.
    Its retry budget starts now (`clock`'s; without `settings`, both are the worker context's).
    """
    settings, clock = _settings_and_clock(settings, clock)
    letters = DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)
    letter = letters.get(delivery_id)
    if letter is None or not letters.remove(delivery_id):  # remove() lets one of two racing replays win
        return None
    job_id = job_id_of(delivery_id, "replay-" + uuid.uuid4().hex[:8])
    enqueue_delivery(redis, settings, letter.event_id, letter.handler, job_id, replayed_at=clock.now(), clock=clock)
    EventStore(redis, ttl=settings.enriched_event_ttl_seconds).record_outcome(letter.event_id, letter.handler, "queued")
    log.info("dead_letter_replayed", delivery_id=delivery_id, event_id=letter.event_id, handler=letter.handler)
    return job_id


def replay_event(
    redis: Redis,
    event_id: str,
    handler: str | None = None,
    force: bool = False,
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
) -> list[str]:
    """Queue the event's deliveries (or one handler's) again; `force` posts even after a success.

    Returns the delivery ids queued: none when the event's record has expired and no handler
    is named.
    """
    settings, clock = _settings_and_clock(settings, clock)
    store = EventStore(redis, ttl=settings.enriched_event_ttl_seconds)
    letters = DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)
    record = store.record(event_id) or {}
    names = [handler] if handler else list(record.get("handlers") or [])
    for name in names:
        delivery_id = delivery_id_of(event_id, name)
        letters.remove(delivery_id)
        job_id = job_id_of(delivery_id, "replay-" + uuid.uuid4().hex[:8])
        enqueue_delivery(redis, settings, event_id, name, job_id, force=force, replayed_at=clock.now(), clock=clock)
        store.record_outcome(event_id, name, "queued")
    log.info("event_replayed", event_id=event_id, handlers=names, force=force)
    return [delivery_id_of(event_id, name) for name in names]


def _settings_and_clock(settings: Settings | None, clock: Clock | None) -> tuple[Settings, Clock]:
    """The ones given; else the worker context's (inside a worker), or the real clock (an operator's command)."""
    if settings is None:
        context = current()
        return context.settings, clock or context.clock
    return settings, clock or SYSTEM_CLOCK
