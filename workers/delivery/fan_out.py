"""Fan-out: an enriched event stored once, and one delivery job queued per subscribed handler.

A delivery whose job is still known to RQ (pending, or finished within the result TTL) is not
queued again, so a retried enrichment job does not double the deliveries. What a delivery job
does is workers/delivery/attempt.py; how it is queued, workers/delivery/jobs.py.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis import Redis

from config.settings import Settings
from workers.context import current
from workers.delivery.jobs import delivery_id_of, enqueue_delivery, job_id_of
from workers.store import EventStore

log = structlog.get_logger("workers.delivery")


def fan_out(
    redis: Redis, event: dict[str, Any], handler_names: list[str], *, settings: Settings | None = None
) -> list[str]:
    """Store `event` once and queue one delivery per distinct handler; returns the delivery ids."""
    settings = settings or current().settings
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
