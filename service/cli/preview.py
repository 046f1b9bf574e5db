"""`circleci-events preview EVENT.json`: which subscriptions match, why the others do not, and
what each handler would send.

EVENT.json is an enriched event (it has `schema_version`) or a raw CircleCI webhook payload,
which is turned into an event from what the webhook itself says (no API calls, so no jobs or
failed tests). A raw workflow event's transition is `--transition KIND` when given, else what
the live state in REDIS_URL says it would be (read only: nothing is recorded), else unknown.
Nothing is sent. Why a subscription does not match is the matcher's own answer
(`Subscription.mismatch`), never worked out again here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import click
import orjson

from config.errors import WebhookError
from config.redaction import option_secrets
from config.settings import Settings
from service.cli.common import EXIT_USAGE, clear_errors, echo, fail, load_settings, one_of
from service.cli.message_view import message_lines
from service.cli.routes_view import read_routes, redact_text
from service.payload import parse_event
from workers.connection import connect
from workers.enriched_event import EnrichedEvent
from workers.enrichment import from_webhook, transition_subject
from workers.handlers import HANDLER_TYPES, Handler, HandlerContext, build_handler
from workers.handlers.view import labelled
from workers.jobs import JOB_COMPLETED, WORKFLOW_COMPLETED
from workers.routes import Mismatch, Routes, Subscription
from workers.transition import KINDS, TransitionStore
from workers.vcs import VcsFacts, vcs_facts

NO_TRANSITION_HINT = "unknown: pass --transition KIND or set REDIS_URL to read the live state"


def read_event(path: Path) -> tuple[dict[str, Any], bool]:
    """The enriched event in `path` (built from the webhook payload when it is a raw one) and
    whether it was raw."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot be read ({exc.strerror})", EXIT_USAGE)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON ({exc})", EXIT_USAGE)
    if isinstance(data, dict) and "schema_version" in data:
        return data, False
    try:
        event = parse_event(body, None)
    except WebhookError as exc:
        fail(f"{path}: not an enriched event nor a CircleCI webhook payload: {exc.message}", EXIT_USAGE)
    if event.type not in (WORKFLOW_COMPLETED, JOB_COMPLETED):
        fail(f"{path}: a {event.type!r} event is acknowledged, never routed; nothing would be sent", EXIT_USAGE)
    envelope = {
        "event_id": event.id,
        "event_type": event.type,
        "payload": event.payload,
        "received_at": datetime.now(UTC).isoformat(),
        "request_id": None,
    }
    built = from_webhook(envelope, vcs_facts(event.payload))
    built["enrichment"]["reason"] = "preview of a raw webhook payload: no API calls"
    return cast(dict[str, Any], built), True


def assume_transition(event: dict[str, Any], raw: bool, kind: str | None, settings: Settings) -> str:
    """Set the transition the preview assumes on `event`; returns where it came from (or, when
    unknown, why)."""
    if event.get("event_type") != WORKFLOW_COMPLETED:
        if kind is not None:
            fail(f"--transition: a {event.get('event_type')} event has no transition (workflow events do)", EXIT_USAGE)
        return "job events have none"
    if kind is not None:
        event["transition"] = {"kind": kind, "previous_status": None, "previous_pipeline_number": None}
        return "--transition"
    if not raw:
        return "the enriched event"
    if not settings.redis_url:
        return NO_TRANSITION_HINT
    subject = transition_subject(cast(EnrichedEvent, event), VcsFacts.from_dict(event.get("vcs") or {}))
    if subject is None:
        return "the webhook names neither branch nor tag"
    with connect(settings) as redis:
        peeked = TransitionStore(redis, ttl_seconds=settings.transition_ttl_seconds).record(**subject, peek=True)
    event["transition"] = peeked.to_dict()
    return "the live state in REDIS_URL; nothing recorded"


def rendered(routes: Routes, event: dict[str, Any], thread_ts: str | None = None) -> list[dict[str, Any]]:
    """What each handler the event goes to would send, every secret of its options redacted."""
    outputs = []
    for name in routes.match(event):
        config = routes.handlers[name]
        body = render(build_handler(name, config, HandlerContext(routes=routes)), event, thread_ts)
        text = body.decode() if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False)
        outputs.append(
            {
                "handler": name,
                "type": config.type,
                "body": json.loads(redact_text(text, option_secrets(config.options))),
            }
        )
    return outputs


def render(handler: Handler, event: dict[str, Any], thread_ts: str | None) -> dict[str, Any] | bytes:
    """What `handler` would send; one whose platform threads, given `thread_ts`, renders for its
    breakage's thread rooted there (Handler.render_in_thread)."""
    event = handler.shown(event)  # as the handler is given it (`log_tail: false`)
    if thread_ts is None or not handler.capabilities.threads:
        return handler.render(event)
    return handler.render_in_thread(event, thread_ts)


def threaded_types() -> str:
    """The handler types whose platform threads, as the --thread help names them."""
    return ", ".join(kind for kind, cls in HANDLER_TYPES.items() if cls.capabilities.threads)


@click.command()
@click.argument("event_file", metavar="EVENT.json", type=click.Path(path_type=Path))
@click.option("--routes", "routes_file", help="The routes file (default: $ROUTES_FILE).")
@click.option(
    "--transition",
    "kind",
    metavar="KIND",
    callback=one_of(KINDS, "transition kind"),
    help=f"Assume this transition for a workflow event ({', '.join(KINDS)}); "
    "without it a raw webhook's is read from REDIS_URL when set (nothing is written).",
)
@click.option(
    "--thread",
    "thread_ts",
    metavar="TS",
    help=f"{threaded_types()}: the event's breakage already has its thread, rooted at message TS (default: none yet).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the documents as JSON.")
@clear_errors
def preview(event_file: Path, routes_file: str | None, kind: str | None, thread_ts: str | None, as_json: bool) -> None:
    """Show which subscriptions EVENT.json matches, why the others do not, and exactly what each
    handler would send.

    Sends nothing. Secrets in what would be sent are printed as `[redacted]`. A handler whose
    platform threads (slack_app) shows its calls: for a break with no thread yet the root, with
    --thread TS the replies and root updates that event makes in that thread.
    """
    settings = load_settings(quiet=True)
    _, routes = read_routes(routes_file, settings)
    event, raw = read_event(event_file)
    source = assume_transition(event, raw, kind, settings)
    explained = routes.explain(event)
    outputs = rendered(routes, event, thread_ts)
    if as_json:
        result = {
            "event_id": event.get("event_id"),
            "transition": event.get("transition"),
            "subscriptions": [{"name": s.name, "handlers": list(s.handlers)} for s, miss in explained if miss is None],
            "unmatched": [{"name": s.name, "key": miss.key, "reason": str(miss)} for s, miss in explained if miss],
            "deliveries": outputs,
        }
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for line in describe(event, source, explained, outputs):
        echo(line)


def describe(
    event: dict[str, Any],
    source: str,
    explained: list[tuple[Subscription, Mismatch | None]],
    outputs: list[dict[str, Any]],
) -> list[str]:
    """The preview as a person reads it, in the demo's layout."""
    vcs, workflow, job = event.get("vcs") or {}, event.get("workflow") or {}, event.get("job") or {}
    lines = [
        labelled("event", str(event.get("event_id"))),
        labelled("type", f"{event.get('event_type')}  {event.get('status')}"),
        labelled(
            "project",
            f"{(event.get('project') or {}).get('slug')}  {vcs.get('branch') or vcs.get('tag') or ''}".rstrip(),
        ),
        labelled("workflow", f"{workflow.get('name')}" + (f" · job {job.get('name')}" if job else "")),
        labelled("transition", transition_text(event.get("transition"), source)),
        "subscriptions",
    ]
    for subscription, mismatch in explained:
        place = f"{subscription.name} (line {subscription.line})"
        if mismatch is None:
            lines.append(f"  matches     {place} -> {', '.join(subscription.handlers)}")
        else:
            hint = f"; {source}" if mismatch.key == "transitions" and source == NO_TRANSITION_HINT else ""
            lines.append(f"  no match    {place}: {mismatch}{hint}")
    if not outputs:
        return [*lines, "", "no subscription matches: nothing would be sent"]
    for out in outputs:
        lines += ["", f"── {out['handler']} ({out['type']}) would send ──", *message_lines(out["type"], out["body"])]
    return lines


def transition_text(transition: dict[str, Any] | None, source: str) -> str:
    if not transition:
        return f"none ({source})"
    previous = transition.get("previous_status")
    was = f"was {previous} #{transition.get('previous_pipeline_number')}; " if previous else ""
    return f"{transition.get('kind')} ({was}{source})"
