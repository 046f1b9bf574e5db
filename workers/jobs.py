"""The job contract between the receiver and the workers: names, retry policies, TTLs, envelope.

Four kinds of RQ job run on the one `events` queue, all with JSON arguments:

    workers.events.process_event(envelope)          one per accepted delivery, queued by the web
    workers.delivery.deliver(event_id, handler)     one per (event, handler), at the queue's front
    workers.alerts.flush_alerts(handler)            one alert to one `alerts:` handler, at the front
    workers.actions.act(click)                      one per Slack button click, queued by the web, at the front

Their dotted names are stored in Redis with every queued job, so they stay importable there
whatever moves behind them. The envelope is what the receiver knows of a delivery; the raw
webhook payload travels in it as `payload`, spliced in as the bytes CircleCI sent.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from rq import Retry

from config.settings import Settings

PROCESS_EVENT = "workers.events.process_event"
DELIVER = "workers.delivery.deliver"
FLUSH_ALERTS = "workers.alerts.flush_alerts"
ACT = "workers.actions.act"
ACTION_DESCRIPTION = "act"
# The only functions a worker runs (workers/worker.py checks a job's name before RQ imports it)
JOB_FUNCTIONS = frozenset({PROCESS_EVENT, DELIVER, FLUSH_ALERTS, ACT})

# Webhook event types (https://circleci.com/docs/reference/outbound-webhooks-reference/).
WORKFLOW_COMPLETED = "workflow-completed"
JOB_COMPLETED = "job-completed"
PING = "ping"
# Derived by the worker, never sent by CircleCI: an approval job waits (workers/approvals.py).
APPROVAL_PENDING = "approval-pending"

# An enrichment job that raised is tried again this often (its own deferrals are separate jobs).
EVENT_RETRY_INTERVALS = (10, 30, 60, 300, 900)
# A worker killed mid-send leaves its delivery job started; RQ's registry clean-up retries it.
CRASH_RETRY_INTERVALS = (5, 30, 120)
EVENT_RESULT_TTL = 3600
EVENT_FAILURE_TTL = 30 * 24 * 3600


def event_retry() -> Retry:
    return Retry(max=len(EVENT_RETRY_INTERVALS), interval=list(EVENT_RETRY_INTERVALS))


def crash_retry() -> Retry:
    return Retry(max=len(CRASH_RETRY_INTERVALS), interval=list(CRASH_RETRY_INTERVALS))


EVENT_DESCRIPTION = "process_event"  # else RQ renders one from the arguments (~70 µs)


def event_job_options(settings: Settings) -> dict[str, Any]:
    """`Queue.enqueue*` options of a process_event job (the web's admission builds the same record)."""
    return {
        "description": EVENT_DESCRIPTION,
        "job_timeout": settings.event_job_timeout_seconds,
        "result_ttl": EVENT_RESULT_TTL,
        "failure_ttl": EVENT_FAILURE_TTL,
        "retry": event_retry(),
    }


class Envelope(TypedDict):
    """process_event's one argument."""

    event_id: str
    event_type: str
    request_id: str | None
    received_at: str
    payload: NotRequired[dict[str, Any]]  # the webhook as CircleCI sent it
    attempt: NotRequired[int]  # deferrals so far (429/5xx from CircleCI)


def envelope(*, event_id: str, event_type: str, request_id: str | None, received_at: str) -> Envelope:
    """The envelope of a delivery the receiver accepted (its payload is added as raw bytes)."""
    return {"event_id": event_id, "event_type": event_type, "request_id": request_id, "received_at": received_at}
