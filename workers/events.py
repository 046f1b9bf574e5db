"""The job the receiver queues for every accepted delivery: `workers.events.process_event`."""

from __future__ import annotations

from typing import Any

import structlog
from rq import get_current_job

log = structlog.get_logger("workers.events")


def bind_job_context(envelope: dict[str, Any]) -> None:
    """Continue the receiver's trace: every log line of this job carries its ids."""
    job = get_current_job()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=envelope.get("request_id"),
        event_id=envelope.get("event_id"),
        job_id=job.id if job else None,
    )


def process_event(envelope: dict[str, Any]) -> dict[str, Any]:
    """Take one delivery off the queue. Enrichment and routing build on this."""
    bind_job_context(envelope)
    payload = envelope["payload"]
    project = payload.get("project", {})
    subject = payload.get("job") or payload.get("workflow") or {}
    log.info(
        "event_received",
        event_type=envelope["event_type"],
        project=project.get("slug"),
        name=subject.get("name"),
        status=subject.get("status"),
    )
    return {"event_id": envelope["event_id"], "status": "received"}
