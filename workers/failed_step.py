"""The failing step of a failed job, and the end of its output: `failed_jobs[].failed_step`.

    1  API v1.1's job (CircleCIClient.job_v1: the token bucket, 429/Retry-After, the token)
    2  the failing step: the first step, in order, with an action that is neither a background
       step nor `insignificant` and whose status is not success, running or canceled. A step
       killed by the no-output timeout says `status: timedout` with `failed` and `exit_code`
       null, so `failed` is not asked (votingworks/vxsuite PR #9149); a background service
       (postgres, redis) is `canceled` when the job ends and is not what broke. Parallel jobs:
       the first failing node (the lowest action `index`) of that step.
    3  its action's `output_url`, read without the token (workers/circleci/step_output.py)
    4  the tail (workers/log_tail.py), masked (workers/secret_mask.py) before it is cut; the
       step's name too, which defaults to the command it runs

What cannot be had after step 2 leaves `log_tail` null with `reason` saying why; a failure
before it raises (CircleCIAPIError, or LogTailUnavailable for an answer without steps or
without a failing step), and the enrichment notes it. Nothing here ever fails the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.errors import LogTailUnavailable
from workers.circleci.client import CircleCIClient
from workers.circleci.step_output import StepOutput
from workers.enriched_event import FailedStep
from workers.log_tail import read_tail
from workers.secret_mask import SecretMask

__all__ = ["NOT_FAILING", "StepReader", "failing_action"]

NOT_FAILING = frozenset({"success", "running", "canceled"})


def failing_action(job: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]] | None:
    """(step name, action) of the failing step's first failing node; None when no step failed.
    Raises LogTailUnavailable when the answer has no steps."""
    steps = job.get("steps")
    if not isinstance(steps, list) or not steps:
        raise LogTailUnavailable("the v1.1 job has no steps")
    for step in steps:
        if not isinstance(step, Mapping):
            continue
        actions = [a for a in step.get("actions") or [] if isinstance(a, Mapping)]
        actions.sort(key=lambda a: _int(a.get("index")) or 0)
        for action in actions:
            if action.get("background") or action.get("insignificant"):
                continue
            status = action.get("status")
            if isinstance(status, str) and status not in NOT_FAILING:
                name = step.get("name") or action.get("name")
                return (str(name) if name is not None else None), action
    return None


class StepReader:
    """Finds a failed job's failing step and reads its tail; one per worker process."""

    def __init__(
        self,
        client: CircleCIClient,
        output: StepOutput,
        *,
        mask: SecretMask | None = None,
        max_lines: int = 20,
        max_chars: int = 2500,
    ) -> None:
        self.client = client
        self.output = output
        self.mask = mask or SecretMask()  # replaced whole when the routes file (its `redact:`) is reloaded
        self.max_lines = max_lines
        self.max_chars = max_chars

    def failed_step(self, slug: str, job_number: int) -> FailedStep:
        """The failing step with its tail (or the reason it has none); raises CircleCIAPIError or
        LogTailUnavailable when the step itself cannot be named."""
        found = failing_action(self.client.job_v1(slug, job_number))
        if found is None:
            raise LogTailUnavailable("no failing step in the v1.1 job")
        name, action = found
        mask = self.mask
        step: FailedStep = {
            "name": mask.mask(name) if name is not None else None,
            "status": _text(action.get("status")),
            "exit_code": _int(action.get("exit_code")),
            "node_index": _int(action.get("index")),
            "log_tail": None,
            "truncated": bool(action.get("truncated")),
            "source": "v1.1",
            "reason": None,
        }
        url = action.get("output_url")
        if not isinstance(url, str) or not url:
            step["reason"] = "the step has no output URL" + ("" if action.get("has_output", True) else " (no output)")
            return step
        try:
            body, partial = self.output.fetch(url)
            tail = read_tail(body, partial=partial, max_lines=self.max_lines, max_chars=self.max_chars, mask=mask.mask)
        except LogTailUnavailable as exc:
            step["reason"] = exc.message
            return step
        step["log_tail"] = tail.text
        step["truncated"] = step["truncated"] or tail.truncated
        return step


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
