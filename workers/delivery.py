"""Delivery: one RQ job per (event, handler), at the front of the events queue, posted once.

    fan_out(redis, event, handler_names)      store the event once; queue one job per handler
    deliver(event_id, handler, force=False)   the job, `workers.delivery.deliver`
    replay_dead_letter(redis, delivery_id)    queue a dead letter again and forget it
    replay_event(redis, event_id, ...)        queue an event's deliveries again

Exactly-once effect: a success is recorded per delivery (`cie:delivered:<delivery_id>`, SET NX)
and a delivery that finds it does nothing unless forced; a short lock (`cie:lock:<delivery_id>`,
SET NX PX) held while sending keeps two workers from posting the same delivery at once.

A failed send (DeliveryRetryable, or anything unexpected) queues the next attempt as a new job
through RQ's scheduler, after the larger of exponential backoff with jitter and the 429's
Retry-After, rounded up to RQ's whole seconds. When that would fall past the retry budget
(counted from the event's received_at, or from the replay) the delivery is dead-lettered.
DeliveryRejected (a 4xx other than 408/429) is a configuration error: logged at error level
and dead-lettered at once with reason `rejected`, so it can be replayed once fixed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from redis import Redis
from rq import get_current_job

from config.settings import Settings
from workers.dead_letters import DeadLetters
from workers.delivery_attempt import DeliveryAttempt
from workers.delivery_context import current_settings, get_context
from workers.delivery_jobs import delivery_id_of, enqueue_delivery, job_id_of
from workers.store import EventStore

__all__ = ["deliver", "delivery_id_of", "fan_out", "job_id_of", "replay_dead_letter", "replay_event"]

log = structlog.get_logger("workers.delivery")


def fan_out(
    redis: Redis, event: dict[str, Any], handler_names: list[str], *, settings: Settings | None = None
) -> list[str]:
    """Store `event` once and queue one delivery per distinct handler; returns the delivery ids.

    A delivery whose job is still known to RQ (pending, or finished within the result TTL) is
    not queued again, so a retried enrichment job does not double the deliveries.
    """
    settings = settings or current_settings()
    event_id = event["event_id"]
    names = list(dict.fromkeys(handler_names))
    store = EventStore(redis, ttl=settings.enriched_event_ttl_seconds)
    store.save(event, handlers=names)
    queued = [
        name
        for name in names
        if enqueue_delivery(redis, settings, event_id, name, job_id_of(delivery_id_of(event_id, name)))
    ]
    for name in queued:
        store.record_outcome(event_id, name, "queued")
    log.info("deliveries_queued", event_id=event_id, handlers=names, queued=len(queued))
    return [delivery_id_of(event_id, name) for name in names]


def deliver(event_id: str, handler: str, *, force: bool = False, replayed_at: float | None = None) -> str:
    """Send one event to one handler, at most once with effect; returns the outcome."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("deliver runs as an RQ job: queue it with fan_out or a replay")
    context = get_context()
    attempt = DeliveryAttempt(context, job, event_id, handler, force=force, replayed_at=replayed_at)
    return attempt.run()


def replay_dead_letter(redis: Redis, delivery_id: str, *, settings: Settings | None = None) -> str | None:
    """Queue a dead letter's delivery again and remove the letter; None when there is none.

    The job renders from the stored enriched event with the routes and templates the worker
    has then. It posts once: a success already recorded makes it (and any later replay) a no-op.
    """
    settings = settings or current_settings()
    letters = DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)
    letter = letters.get(delivery_id)
    if letter is None or not letters.remove(delivery_id):  # remove() lets one of two racing replays win
        return None
    job_id = job_id_of(delivery_id, "replay-" + uuid.uuid4().hex[:8])
    enqueue_delivery(redis, settings, letter.event_id, letter.handler, job_id, replayed_at=time.time())
    EventStore(redis, ttl=settings.enriched_event_ttl_seconds).record_outcome(letter.event_id, letter.handler, "queued")
    log.info("dead_letter_replayed", delivery_id=delivery_id, event_id=letter.event_id, handler=letter.handler)
    return job_id


def replay_event(
    redis: Redis, event_id: str, handler: str | None = None, force: bool = False, *, settings: Settings | None = None
) -> list[str]:
    """Queue the event's deliveries (or one handler's) again; `force` posts even after a success.

    Returns the delivery ids queued: none when the event's record has expired and no handler
    is named.
    """
    settings = settings or current_settings()
    store = EventStore(redis, ttl=settings.enriched_event_ttl_seconds)
    letters = DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)
    record = store.record(event_id) or {}
    names = [handler] if handler else list(record.get("handlers") or [])
    for name in names:
        delivery_id = delivery_id_of(event_id, name)
        letters.remove(delivery_id)
        job_id = job_id_of(delivery_id, "replay-" + uuid.uuid4().hex[:8])
        enqueue_delivery(redis, settings, event_id, name, job_id, force=force, replayed_at=time.time())
        store.record_outcome(event_id, name, "queued")
    log.info("event_replayed", event_id=event_id, handlers=names, force=force)
    return [delivery_id_of(event_id, name) for name in names]
