"""Delivery jobs on the events queue, at its front: their ids and how they are queued.

One delivery is one (event, handler): its id is `<event_id>:<handler>`; its first job's RQ id
is derived from it, so the same delivery cannot be queued twice while that job is known to RQ
(queued, scheduled, running, or finished within the result TTL). Retries, waits for the lock
and replays are further jobs with suffixed ids. Arguments are JSON: event id, handler name,
and `force` / `replayed_at` when set.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from config.clock import SYSTEM_CLOCK, Clock
from config.settings import Settings
from workers.jobs import DELIVER, crash_retry


def delivery_id_of(event_id: str, handler: str) -> str:
    return f"{event_id}:{handler}"


def job_id_of(delivery_id: str, suffix: str = "") -> str:
    """The RQ job id of a delivery (RQ allows only letters, digits, '_' and '-')."""
    base = "delivery-" + hashlib.sha256(delivery_id.encode()).hexdigest()[:32]
    return f"{base}-{suffix}" if suffix else base


def enqueue_delivery(
    redis: Redis,
    settings: Settings,
    event_id: str,
    handler: str,
    job_id: str,
    *,
    force: bool = False,
    replayed_at: float | None = None,
    delay: float = 0.0,
    clock: Clock = SYSTEM_CLOCK,
) -> bool:
    """Queue (or schedule, after `delay` seconds) one delivery job; False when `job_id` exists."""
    queue = Queue(settings.events_queue, connection=redis, serializer=JSONSerializer)
    kwargs: dict[str, Any] = {}
    if force:
        kwargs["force"] = True
    if replayed_at is not None:
        kwargs["replayed_at"] = replayed_at
    ttl = max(settings.enriched_event_ttl_seconds, settings.delivery_retry_budget_seconds)
    job = queue.create_job(
        DELIVER,
        args=[event_id, handler],
        kwargs=kwargs,
        job_id=job_id,
        description=f"deliver {job_id}",
        timeout=int(settings.delivery_timeout_seconds * 4 + 20),
        result_ttl=ttl,
        failure_ttl=ttl,
        retry=crash_retry(),
        status=JobStatus.SCHEDULED if delay > 0 else JobStatus.QUEUED,
    )
    job.enqueue_at_front = True  # before the next events' enrichment, also when the scheduler queues it
    try:
        if delay > 0:
            # RQ's scheduler keeps whole seconds and runs what is due: round up, never early
            when = datetime.fromtimestamp(math.ceil(clock.now() + delay), UTC)
            queue.schedule_job(job, when, unique=True)
        else:
            queue.enqueue_job(job, at_front=True, unique=True)
    except DuplicateJobError:
        return False
    return True
