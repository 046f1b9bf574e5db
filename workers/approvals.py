"""Approvals: the derived `approval-pending` event, one per approval request that waits.

CircleCI's webhooks say `workflow-completed` and `job-completed`, never "on hold". A
job-completed event whose workflow (`GET /workflow/{id}/job`, every page) has an `approval` job
with status `on_hold` reveals one: the worker derives an `approval-pending` event from it, stores
it like any event (`events show <id>`) and routes it to the subscriptions that name it in
`events:`. Only when some subscription names it is the workflow's job list asked for: one API call
per job-completed event then, none otherwise.

Keys:

    cie:approval:<approval_request_id>   string  the derived event's id; SET NX before the notice
                                                 fans out, so a second job-completed seeing the same
                                                 request does not notify again; expires with the
                                                 enriched event (ENRICHED_EVENT_TTL_SECONDS)

The derived event's id is a UUID made from the request id (uuid5), the same for every job-completed
that sees it. The claim comes before the fan-out: a worker dying between the two loses that notice
(the next job-completed of the workflow does not repeat it); the other order could notify twice.

The gap: an approval job that is the workflow's first job, or whose jobs before it all finished
before the subscription existed, has no job-completed to reveal it, and nothing is polled.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from redis import Redis

from config.errors import CircleCIAPIError
from workers.circleci.models import Job
from workers.jobs import APPROVAL_PENDING, JOB_COMPLETED

log = structlog.get_logger("workers.approvals")
CLAIM_PREFIX = "cie:approval:"
# uuid5 namespace of derived event ids (a fixed random UUID: ids never collide with CircleCI's)
DERIVED_NAMESPACE = uuid.UUID("6f1c2f9e-8a53-4d7e-9a51-0c6b8f1f4a21")


def waiting(jobs: list[Job]) -> list[Job]:
    """The approval jobs that wait: type `approval`, status `on_hold`, with a request id."""
    return [j for j in jobs if j.type == "approval" and j.status == "on_hold" and j.approval_request_id]


def derived_event_id(approval_request_id: str) -> str:
    return str(uuid.uuid5(DERIVED_NAMESPACE, f"{APPROVAL_PENDING}:{approval_request_id}"))


def approval_event(source: dict[str, Any], job: Job, jobs: list[Job]) -> dict[str, Any]:
    """The `approval-pending` event a job-completed event reveals for one waiting approval job.

    It carries the source event's project, pipeline, commit and workflow; `job` is the approval
    job (its link is the workflow's page, where CircleCI approves) and `approval` says what an
    action acts on.
    """
    workflow = dict(source.get("workflow") or {})
    workflow["status"] = "on_hold"
    request_id = str(job.approval_request_id)
    return {
        **source,
        "event_id": derived_event_id(request_id),
        "event_type": APPROVAL_PENDING,
        "status": "on_hold",
        "workflow": workflow,
        "job": {
            "id": job.id,
            "number": None,
            "name": job.name,
            "status": "on_hold",
            "type": "approval",
            "started_at": None,
            "stopped_at": None,
            "duration_seconds": None,
            "web_url": workflow.get("url"),
        },
        "jobs": [
            {"id": j.id, "name": j.name, "number": j.job_number, "type": j.type, "status": j.status} for j in jobs
        ],
        "failed_jobs": [],
        "transition": None,
        "approval": {
            "approval_request_id": request_id,
            "job_id": job.id,
            "job_name": job.name,
            "workflow_id": workflow.get("id"),
            "derived_from": source.get("event_id"),
        },
    }


class Approvals:
    """Finds the approval requests a job-completed event reveals, each announced once."""

    def __init__(self, redis: Redis, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def claim(self, approval_request_id: str, event_id: str) -> bool:
        """True for the first caller only (SET NX), whoever else saw the same request."""
        return bool(self.redis.set(CLAIM_PREFIX + approval_request_id, event_id, nx=True, ex=self.ttl))

    def reveal(self, event: dict[str, Any], jobs: list[Job]) -> list[dict[str, Any]]:
        """The approval-pending events of `event`'s workflow not announced before (claimed now)."""
        found = []
        for job in waiting(jobs):
            derived = approval_event(event, job, jobs)
            if self.claim(str(job.approval_request_id), derived["event_id"]):
                found.append(derived)
            else:
                log.info("approval_already_announced", approval_request_id=job.approval_request_id)
        return found


def workflow_jobs_for_approvals(client: Any, event: dict[str, Any]) -> list[Job]:
    """The job-completed event's workflow jobs (one call), or none: no workflow id, no client, or
    CircleCI could not answer (logged; the event itself goes on)."""
    workflow_id = (event.get("workflow") or {}).get("id")
    if event.get("event_type") != JOB_COMPLETED or client is None or not workflow_id:
        return []
    try:
        return list(client.workflow_jobs(workflow_id))
    except CircleCIAPIError as exc:
        log.warning("approval_check_failed", workflow_id=workflow_id, error_code=exc.code, reason=exc.message)
        return []
