"""`circleci-events send-test-event [--url URL] [--status S] [--branch B] [--pipeline N]`: sign and
POST a sample webhook, as CircleCI would.

Without --url it goes to the `run` started on this machine (--instance PID when several run),
signed with the secret it accepts (service/cli/instance.py).

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
from service.cli.common import EXIT_USAGE, clear_errors, fail, instance_option, load_settings, one_of
from service.payload import EVENT_TYPES
from service.signature import HEADER as SIGNATURE_HEADER
from service.signature import sign
from workers.jobs import JOB_COMPLETED, PING, WORKFLOW_COMPLETED

# The statuses CircleCI's webhooks document (../shared/reference/circleci-webhooks.md §4): a
# workflow's five; a job has no `error`.
STATUSES = ("success", "failed", "error", "canceled", "unauthorized")
JOB_STATUSES = ("success", "failed", "canceled", "unauthorized")
WEBHOOK_PATH = "/webhooks/circleci"
SLUG = "github/example-org/example-app"
WORKFLOW_URL = "https://app.circleci.com/pipelines/" + SLUG + "/{pipeline}/workflows/{workflow_id}"
PIPELINE = 42
BRANCH = "main"


def sample_payload(
    event_type: str,
    status: str,
    *,
    pipeline: int = PIPELINE,
    branch: str = BRANCH,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A webhook payload of `event_type` with `status`, pipeline number `pipeline` on `branch`, a
    new id and times around `now`."""
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
            "number": pipeline,
            "created_at": at(120),
            "trigger": {"type": "webhook"},
            "vcs": {
                "provider_name": "github",
                "origin_repository_url": "https://github.com/example-org/example-app",
                "target_repository_url": "https://github.com/example-org/example-app",
                "revision": uuid.uuid4().hex + uuid.uuid4().hex[:8],
                "commit": {"subject": "A test event from circleci-events", "author": {"name": "circleci-events"}},
                "branch": branch,
            },
        },
        "workflow": {
            "id": workflow_id,
            "name": "build-test-deploy",
            "created_at": at(120),
            "stopped_at": at(1),
            "url": WORKFLOW_URL.format(pipeline=pipeline, workflow_id=workflow_id),
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


def signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers CircleCI would send `payload` with, signed with `secret`."""
    body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "user-agent": "CircleCI-Webhook/1.0",
        "circleci-event-type": payload["type"],
        SIGNATURE_HEADER: sign(body, secret),
    }
    return body, headers


def webhook_url(url: str) -> str:
    """The receiver's endpoint: URL as given, or with /webhooks/circleci when it has no path."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        fail(f"--url must be an http:// or https:// URL, got {url!r}", EXIT_USAGE)
    return str(parsed.copy_with(path=WEBHOOK_PATH)) if parsed.path in ("", "/") else url


def check_branch(context: click.Context, param: click.Parameter, branch: str) -> str:
    """A branch name git could have: not empty, no spaces or control characters."""
    if not branch or any(c.isspace() or not c.isprintable() for c in branch):
        fail(f"--branch {branch!r} cannot be a branch name: give one without spaces, e.g. main", EXIT_USAGE)
    return branch


@click.command("send-test-event")
@click.option(
    "--url",
    help="The receiver: its base URL or the full /webhooks/circleci URL (default: the `run` started on this machine).",
)
@click.option("--type", "event_type", type=click.Choice(EVENT_TYPES), default=WORKFLOW_COMPLETED, show_default=True)
@click.option(
    "--status",
    default="success",
    show_default=True,
    callback=one_of(STATUSES, "status"),
    help=f"The workflow's or job's status: {', '.join(STATUSES)} (a job has no error).",
)
@click.option("--branch", default=BRANCH, show_default=True, callback=check_branch, help="The pipeline's branch.")
@click.option(
    "--pipeline",
    "pipeline",
    type=click.IntRange(min=1),
    default=PIPELINE,
    show_default=True,
    help="The pipeline's number.",
)
@click.option("--secret", help="The signing secret (default: the first of CIRCLECI_WEBHOOK_SECRETS).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@instance_option
@clear_errors
def send_test_event(
    url: str | None,
    event_type: str,
    status: str,
    branch: str,
    pipeline: int,
    secret: str | None,
    timeout: float,
    as_json: bool,
    instance_pid: int | None,
) -> None:
    """Sign and POST a sample CircleCI webhook to URL and print the answer; exit 1 unless it is 2xx.

    The sample is a workflow (or job) of pipeline --pipeline on --branch that ended with --status,
    so a routes file's subscriptions (branches, statuses, transitions) can be tried: e.g.
    `--pipeline 1 --status failed` then `--pipeline 2 --status success` is a break, then its fix.
    """
    if event_type == JOB_COMPLETED and status not in JOB_STATUSES:
        fail(f"--status {status!r}: a job-completed event's status is one of {', '.join(JOB_STATUSES)}", EXIT_USAGE)
    settings = load_settings(quiet=True)
    if url is None or instance_pid is not None:
        if url is not None:
            fail("give --url or --instance, not both", EXIT_USAGE)
        running = instance.choose(settings, instance_pid)
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
    payload = sample_payload(event_type, status, pipeline=pipeline, branch=branch)
    body, headers = signed(payload, secret)
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
    shown = f"{event_type}" + (f" ({status}, pipeline #{pipeline} on {branch})" if event_type != PING else "")
    click.echo(f"sent {shown} event {payload['id']} to {target}")
    click.echo(f"{response.status_code} {json.dumps(answer)}")
