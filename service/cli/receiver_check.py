"""Whether the receiver at a URL already accepts a signing secret: one signed ping.

`webhooks rotate-secret` asks this before it gives CircleCI a new secret: were the receiver not
yet deployed with it (CIRCLECI_WEBHOOK_SECRETS=new,old), every delivery signed with it would be
refused with 401 until it is. A ping is the one event the receiver verifies and answers (200,
`status: ping`) without queuing anything (service/webhook.py), so the check leaves no trace but
one log line.
"""

from __future__ import annotations

from typing import Any

import httpx

from service.cli.send_test_event import sample_payload, signed
from workers.jobs import PING

TIMEOUT_SECONDS = 10.0


def refusal(target: str, secret: str, *, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when `target` answers a ping signed with `secret` as circleci-events does; else why
    not, in one sentence that never holds the secret."""
    body, headers = signed(sample_payload(PING, "success"), secret)
    try:
        response = httpx.post(target, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"cannot reach the receiver at {target} ({type(exc).__name__}): check --url and that the service runs"
    answer: Any = _json(response)
    if response.status_code == 401:
        return (
            f"the receiver at {target} does not accept the new secret yet (401 {_code(answer)}): "
            "deploy it with CIRCLECI_WEBHOOK_SECRETS=NEW,OLD first, then rotate"
        )
    if response.status_code != 200 or answer.get("status") != "ping":
        return (
            f"the receiver at {target} did not answer a signed ping as circleci-events does "
            f"({response.status_code} {_code(answer) or response.reason_phrase}): check that --url is this service's"
        )
    return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _code(answer: dict[str, Any]) -> str:
    """The error body's `error_code`, short: the server at --url may be anyone's."""
    return str(answer.get("error_code") or "")[:40]
