"""`circleci-events send-test-event [--url URL]`: sign and POST a sample webhook, as CircleCI would.

Without --url it goes to the `run` started on this machine, signed with the secret it accepts
(service/cli/instance.py).

The sample has the shape of CircleCI's documented payloads and a new id each time (the
receiver deduplicates on it), so a deployment can be checked end to end: signature, queue,
workers and the handlers the routes send it to.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx

from service.cli import instance
from service.cli.common import EXIT_USAGE, clear_errors, fail, load_settings
from service.payload import EVENT_TYPES
from service.signature import HEADER as SIGNATURE_HEADER
from service.signature import sign
from workers.jobs import PING, WORKFLOW_COMPLETED

STATUSES = ("success", "failed", "error", "canceled", "unauthorized")
WEBHOOK_PATH = "/webhooks/circleci"
SLUG = "github/example-org/example-app"
WORKFLOW_URL = "https://app.circleci.com/pipelines/" + SLUG + "/42/workflows/{}"


def sample_payload(event_type: str, status: str, *, now: datetime | None = None) -> dict[str, Any]:
    """A webhook payload of `event_type` with `status`, a new id and times around `now`."""
    now = now or datetime.now(UTC)

    def at(seconds: float) -> str:
        return (now - timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    payload: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "happened_at": at(0),
        "webhook": {"id": str(uuid.uuid4()), "name": "circleci-events send-test-event"},
    }
    if event_type == PING:
        return payload
    workflow_id = str(uuid.uuid4())
    payload |= {
        "project": {"id": str(uuid.uuid4()), "name": "example-app", "slug": SLUG},
        "organization": {"id": str(uuid.uuid4()), "name": "example-org"},
        "pipeline": {
            "id": str(uuid.uuid4()),
            "number": 42,
            "created_at": at(120),
            "trigger": {"type": "webhook"},
            "vcs": {
                "provider_name": "github",
                "origin_repository_url": "https://github.com/example-org/example-app",
                "target_repository_url": "https://github.com/example-org/example-app",
                "revision": uuid.uuid4().hex + uuid.uuid4().hex[:8],
                "commit": {"subject": "A test event from circleci-events", "author": {"name": "circleci-events"}},
                "branch": "main",
            },
        },
        "workflow": {
            "id": workflow_id,
            "name": "build-test-deploy",
            "created_at": at(120),
            "stopped_at": at(1),
            "url": WORKFLOW_URL.format(workflow_id),
        },
    }
    if event_type == WORKFLOW_COMPLETED:
        payload["workflow"]["status"] = status
    else:
        payload["job"] = {
            "id": str(uuid.uuid4()),
            "number": 4242,
            "name": "test",
            "status": status,
            "started_at": at(60),
            "stopped_at": at(1),
        }
    return payload


def webhook_url(url: str) -> str:
    """The receiver's endpoint: URL as given, or with /webhooks/circleci when it has no path."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        fail(f"--url must be an http:// or https:// URL, got {url!r}", EXIT_USAGE)
    return str(parsed.copy_with(path=WEBHOOK_PATH)) if parsed.path in ("", "/") else url


@click.command("send-test-event")
@click.option(
    "--url",
    help="The receiver: its base URL or the full /webhooks/circleci URL (default: the `run` started on this machine).",
)
@click.option("--type", "event_type", type=click.Choice(EVENT_TYPES), default=WORKFLOW_COMPLETED, show_default=True)
@click.option("--status", type=click.Choice(STATUSES), default="success", show_default=True)
@click.option("--secret", help="The signing secret (default: the first of CIRCLECI_WEBHOOK_SECRETS).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@clear_errors
def send_test_event(
    url: str | None, event_type: str, status: str, secret: str | None, timeout: float, as_json: bool
) -> None:
    """Sign and POST a sample CircleCI webhook to URL and print the answer; exit 1 unless it is 2xx."""
    settings = load_settings(quiet=True)
    if url is None:
        running = instance.find(settings)
        if running is None:
            fail("--url is required: no `circleci-events run` (make run) is running on this machine", EXIT_USAGE)
        click.echo(f"circleci-events: sending to {running.describe()}", err=True)
        url = running.webhook_url
        secret = secret or (None if settings.webhook_secrets else running.secret)
    if secret is None:
        if not settings.webhook_secrets:
            fail("no signing secret: pass --secret or set CIRCLECI_WEBHOOK_SECRETS", EXIT_USAGE)
        secret = str(settings.webhook_secrets[0])
    target = webhook_url(url)
    payload = sample_payload(event_type, status)
    body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "user-agent": "CircleCI-Webhook/1.0",
        "circleci-event-type": event_type,
        SIGNATURE_HEADER: sign(body, secret),
    }
    try:
        response = httpx.post(target, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {target} ({type(exc).__name__}); check --url and that the service runs")
    try:
        answer: Any = response.json()
    except ValueError:
        answer = {"message": response.text[:200]}
    if not response.is_success:
        detail = answer if isinstance(answer, dict) else {}
        code = detail.get("error_code", "error")
        fail(f"{target} answered {response.status_code} {code}: {detail.get('message', response.text[:200])}")
    if as_json:
        click.echo(json.dumps({"status_code": response.status_code, "sent_event_id": payload["id"], "answer": answer}))
        return
    shown = f"{event_type}" + (f" ({status})" if event_type != PING else "")
    click.echo(f"sent {shown} event {payload['id']} to {target}")
    click.echo(f"{response.status_code} {json.dumps(answer)}")
