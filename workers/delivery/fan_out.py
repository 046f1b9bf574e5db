"""Fan-out: an enriched event stored once, and its first delivery attempt to every subscribed handler.

The first attempts run inside the enrichment job, concurrently (one thread each but the last,
which runs in the job's own), each bounded by DELIVERY_TIMEOUT_SECONDS: a slow destination never
holds back another's first attempt. Only what that attempt could not finish becomes a delivery
job (a retry after backoff, a wait for the lock): one hop from webhook to chat, and one RQ job
per event in the usual case.

An enrichment job that runs again (its worker died, or it raised after the fan-out) does not
attempt a handler that already has an outcome: that handler's delivery has been made, is
being retried by its own jobs, or was given up.

Between the last API answer and the first post, Redis is asked once: one pipeline holds the
enrichment's own writes (`writes`: its cache entries, its count, the pipeline notice), the event
stored and indexed, and for each attempt its lock (SET NX) followed by its delivered check
(EXISTS), in that order, as an attempt alone asks them. That was six round trips in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import structlog
from redis import Redis
from redis.client import Pipeline

from config.settings import Settings
from workers.context import WorkerContext, current
from workers.delivery.attempt import DeliveryAttempt
from workers.delivery.jobs import delivery_id_of
from workers.routing import Routing
from workers.store import EventStore

log = structlog.get_logger("workers.delivery")


def fan_out(
    redis: Redis,
    event: dict[str, Any],
    handler_names: list[str],
    *,
    settings: Settings | None = None,
    job_id: str = "-",
    rerun: bool = False,
    routing: Routing | None = None,
    writes: Sequence[Callable[[Pipeline], Any]] = (),
) -> dict[str, str]:
    """Store `event` once and attempt each distinct handler once; each delivery id's outcome.

    `rerun`: this enrichment ran before, so handlers with an outcome are left to it. `routing`:
    the version of the routes the event was matched with (by default the context's now); every
    attempt sends through its handlers, whatever a reload installs meanwhile. `writes`: queued
    first on the one round trip before the posts.
    """
    context = current()
    settings = settings or context.settings
    routing = routing or context.routing
    event_id = event["event_id"]
    names = list(dict.fromkeys(handler_names))
    store = EventStore(redis, ttl=settings.enriched_event_ttl_seconds, clock=context.clock, refresh=context.key_refresh)
    if rerun and names:
        names = [name for name in names if store.handler_state(event_id, name)["outcome"] is None]
    attempts = [DeliveryAttempt(context, redis, job_id, event_id, name, event=event, routing=routing) for name in names]
    for attempt in attempts:
        attempt.fresh = not rerun
    with redis.pipeline(transaction=False) as pipe:
        for write in writes:
            write(pipe)
        store.save(event, handlers=list(dict.fromkeys(handler_names)), pipe=pipe)
        first = len(pipe)
        asking = [a for a in attempts if a.ask_lock(pipe)]
        replies = pipe.execute()[first:]
    for i, attempt in enumerate(asking):
        attempt.answered(replies[2 * i], replies[2 * i + 1])
    outcomes = dict(zip((a.delivery_id for a in attempts), run_all(context, attempts), strict=True))
    if rerun:
        skipped = [n for n in dict.fromkeys(handler_names) if delivery_id_of(event_id, n) not in outcomes]
        log.info("deliveries_left_to_earlier_run", event_id=event_id, handlers=skipped)
    return outcomes


def run_all(context: WorkerContext, attempts: list[DeliveryAttempt]) -> list[str]:
    """Run the attempts at once: all but the last in the context's send pool, the last here."""
    if not attempts:
        return []
    futures: list[Future[str]] = [context.sends.submit(attempt.run) for attempt in attempts[:-1]]
    last = attempts[-1].run()
    return [future.result() for future in futures] + [last]
