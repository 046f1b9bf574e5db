"""The job the receiver queues for every accepted delivery: `workers.events.process_event`.

It enriches the event through the API, routes it and makes every subscribed handler's first
delivery attempt (workers/delivery/fan_out.py); retries become delivery jobs. While CircleCI is throttling or
failing and the enrichment deadline has not passed, the job reschedules itself through RQ's
scheduler instead of sleeping; after it, the event goes on marked incomplete. A notification
is never dropped because enrichment failed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import orjson
import structlog
from redis.client import Pipeline
from rq import Queue, get_current_job
from rq.serializers import JSONSerializer

from config.errors import CircleCIAPIError, EventUndecodable
from workers import alerts
from workers.approvals import Approvals, waiting, workflow_jobs_for_approvals
from workers.backoff import backoff
from workers.context import WorkerContext, current
from workers.delivery.fan_out import fan_out
from workers.enriched_event import EnrichedEvent
from workers.enrichment import RETRYABLE, Write, pending_writes
from workers.jobs import APPROVAL_PENDING, PROCESS_EVENT, WORKFLOW_COMPLETED, Envelope, event_job_options
from workers.routing import Routing
from workers.timestamps import parse_time

log = structlog.get_logger("workers.events")
# Deferrals wait at least this long, and at most DEFER_CAP_SECONDS unless CircleCI asks for more.
DEFER_BASE_SECONDS = 1.0
DEFER_CAP_SECONDS = 30.0
# `circleci-events api trigger --wait` listens here instead of polling CircleCI.
PIPELINE_CHANNEL = "cie:pipeline:{}"


def bind_job_context(envelope: Envelope) -> None:
    """Continue the receiver's trace: every log line of this job carries its ids."""
    job = get_current_job()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=envelope.get("request_id"),
        event_id=envelope.get("event_id"),
        job_id=job.id if job else None,
    )


def process_event(envelope: Envelope) -> dict[str, Any]:
    """Enrich one delivery, route it and attempt each subscribed handler once."""
    if not isinstance(envelope, dict):
        raise EventUndecodable(f"expected the receiver's envelope (a JSON object), got {type(envelope).__name__}")
    bind_job_context(envelope)
    context = current()
    routing = context.routing  # this event is matched and fanned out with this version of the routes
    now = context.clock.now()
    received = parse_time(envelope.get("received_at"))
    remaining = context.settings.enrich_deadline_seconds - (now - (received.timestamp() if received else now))
    writes: list[Write] = []  # the enrichment's cache writes, sent with the fan-out's round trip
    token = pending_writes.set(writes)
    try:
        event = context.enricher.enrich(dict(envelope), may_defer=remaining > 0)
    except RETRYABLE as exc:
        _flush(context, writes)  # what it did fetch stays cached for the next run
        return _defer(context, envelope, exc, remaining)
    finally:
        pending_writes.reset(token)
    enrichment = event["enrichment"]
    writes.append(partial(_count_enriched, context, event))
    handlers = routing.match(event)
    log.info(
        "event_enriched",
        event_type=event["event_type"],
        project=event["project"]["slug"],
        status=event["status"],
        transition=event["transition"]["kind"] if event["transition"] else None,
        complete=enrichment["complete"],
        reason=enrichment["reason"],
        api_calls=enrichment["api_calls"],
        failed_jobs=len(event["failed_jobs"]),
        handlers=handlers,
    )
    workflow = event["workflow"]
    if event["event_type"] == WORKFLOW_COMPLETED and workflow is not None:
        notice = {"workflow_id": workflow["id"], "name": workflow["name"], "status": workflow["status"]}
        channel = PIPELINE_CHANNEL.format(event["pipeline"]["id"])
        writes.append(partial(_publish, channel, orjson.dumps(notice)))
    job = get_current_job()
    rerun = job is not None and bool(job.meta.get("abandoned") or job.number_of_retries)
    data = cast(dict[str, Any], event)  # handlers, templates and stored records read a plain dict
    fan_out(
        context.redis, data, handlers, settings=context.settings, job_id=job.id if job else "-", rerun=rerun,
        routing=routing, writes=writes,
    )  # fmt: skip
    announce_approvals(context, data, routing, job_id=job.id if job else "-")
    return {"event_id": event["event_id"], "status": "enriched", "complete": enrichment["complete"]}


def _count_enriched(context: WorkerContext, event: EnrichedEvent, pipe: Pipeline) -> None:
    alerts.enriched(context, event, pipe=pipe)


def _publish(channel: str, message: bytes, pipe: Pipeline) -> None:
    pipe.publish(channel, message)


def _flush(context: WorkerContext, writes: list[Write]) -> None:
    """Send writes the enrichment left for a round trip that will not come (a deferral)."""
    if writes:
        with context.redis.pipeline(transaction=False) as pipe:
            for write in writes:
                write(pipe)
            pipe.execute()


def announce_approvals(context: WorkerContext, event: dict[str, Any], routing: Routing, *, job_id: str) -> list[str]:
    """Derive, store and fan out the approval-pending events a job-completed event reveals
    (workers/approvals.py), when a subscription listens for them; their event ids."""
    if not routing.listens_for(APPROVAL_PENDING):
        return []
    jobs = workflow_jobs_for_approvals(context.enricher.client, event)
    if not waiting(jobs):
        return []
    actor = context.enricher.trigger_actor(cast(EnrichedEvent, event))
    if actor:
        event = {**event, "pipeline": {**event["pipeline"], "trigger_actor": actor}}
    announced = Approvals(context.redis, ttl=context.settings.enriched_event_ttl_seconds).reveal(event, jobs)
    for derived in announced:
        handlers = routing.match(derived)
        log.info(
            "approval_pending", derived_event_id=derived["event_id"], job=derived["approval"]["job_name"],
            approval_request_id=derived["approval"]["approval_request_id"], handlers=handlers,
        )  # fmt: skip
        fan_out(context.redis, derived, handlers, settings=context.settings, job_id=job_id, routing=routing)
    return [d["event_id"] for d in announced]


def _defer(context: WorkerContext, envelope: Envelope, exc: CircleCIAPIError, remaining: float) -> dict[str, Any]:
    """Run this event again later: after Retry-After for a 429, else backoff; within the deadline."""
    attempt = int(envelope.get("attempt", 0)) + 1
    wait = getattr(exc, "retry_after", None)
    if wait is None:
        wait = backoff(attempt, base=DEFER_BASE_SECONDS, cap=DEFER_CAP_SECONDS, rng=context.rng)
    wait = max(1.0, min(wait, remaining + 1.0))
    job = get_current_job()
    queue = Queue(
        job.origin if job else context.settings.events_queue, connection=context.redis, serializer=JSONSerializer
    )
    queue.enqueue_at(
        datetime.fromtimestamp(context.clock.now() + wait, UTC),
        PROCESS_EVENT,
        {**envelope, "attempt": attempt},
        **event_job_options(context.settings),
    )
    log.info("enrichment_deferred", error_code=exc.code, reason=exc.message, attempt=attempt, delay=round(wait, 2))
    return {"event_id": envelope["event_id"], "status": "deferred", "attempt": attempt}
