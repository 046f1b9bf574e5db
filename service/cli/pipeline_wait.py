"""Waiting for a pipeline's workflows without polling CircleCI in a loop.

Workers publish every workflow-completed event on `cie:pipeline:<pipeline id>` (Redis pub/sub).
The waiter listens there; each event costs one call to list the pipeline's workflows, to learn
whether any is still running. Only when no event arrives for POLL_SECONDS does it ask
CircleCI, and never more often than that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from workers.circleci.client import CircleCIClient
from workers.events import PIPELINE_CHANNEL

POLL_SECONDS = 15.0
TERMINAL = frozenset({"success", "failed", "error", "canceled", "unauthorized", "not_run"})


@dataclass
class PipelineOutcome:
    workflows: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, status)
    events: int = 0
    polls: int = 0
    timed_out: bool = False

    @property
    def done(self) -> bool:
        return bool(self.workflows) and all(status in TERMINAL for _, status in self.workflows.values())

    @property
    def succeeded(self) -> bool:
        return self.done and all(status == "success" for _, status in self.workflows.values())


def wait_for_pipeline(
    client: CircleCIClient,
    redis_client: redis.Redis | None,
    pipeline_id: str,
    *,
    timeout: float,
    on_change: Callable[[PipelineOutcome], None] = lambda outcome: None,
    clock: Callable[[], float] = time.monotonic,
) -> PipelineOutcome:
    outcome = PipelineOutcome()
    pubsub = None
    if redis_client is not None:
        pubsub = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
        pubsub.subscribe(PIPELINE_CHANNEL.format(pipeline_id))
    started = clock()
    last_heard = started
    try:
        while clock() - started < timeout:
            remaining = timeout - (clock() - started)
            message = pubsub.get_message(timeout=min(1.0, remaining)) if pubsub else None
            if message is None and pubsub is None:
                time.sleep(min(1.0, max(0.0, remaining)))
            if message is not None:
                event = json.loads(message["data"])
                outcome.workflows[event["workflow_id"]] = (event["name"], event["status"])
                outcome.events += 1
                last_heard = clock()
                _refresh(client, pipeline_id, outcome)
            elif clock() - last_heard >= POLL_SECONDS:
                outcome.polls += 1
                last_heard = clock()
                _refresh(client, pipeline_id, outcome)
            else:
                continue
            on_change(outcome)
            if outcome.done:
                return outcome
        outcome.timed_out = True
        return outcome
    finally:
        if pubsub is not None:
            pubsub.close()


def _refresh(client: CircleCIClient, pipeline_id: str, outcome: PipelineOutcome) -> None:
    """The pipeline's workflows; a status heard from an event wins over a staler listing."""
    for workflow in client.pipeline_workflows(pipeline_id):
        if workflow.id is None:
            continue
        heard = outcome.workflows.get(workflow.id)
        status = heard[1] if heard and heard[1] in TERMINAL else workflow.status or "unknown"
        outcome.workflows[workflow.id] = (workflow.name or "?", status)
