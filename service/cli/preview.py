"""`circleci-events preview EVENT.json`: which subscriptions match and what each handler would send.

EVENT.json is an enriched event (it has `schema_version`) or a raw CircleCI webhook payload,
which is turned into an event from what the webhook itself says (no API calls, so no failed
tests or transition). Nothing is sent and nothing is written to Redis.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from config.errors import WebhookError
from config.redaction import option_secrets
from service.cli.common import EXIT_USAGE, clear_errors, echo, fail, load_settings
from service.cli.routes_view import read_routes, redact_text
from service.payload import parse_event
from workers.enrichment import from_webhook
from workers.handlers import Handler, HandlerContext, build_handler
from workers.handlers.slack_app import SlackAppHandler
from workers.jobs import JOB_COMPLETED, WORKFLOW_COMPLETED
from workers.threads import Thread, breakage_of
from workers.vcs import vcs_facts


def read_event(path: Path) -> dict[str, Any]:
    """The enriched event in `path`, built from the webhook payload when it is a raw one."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot be read ({exc.strerror})", EXIT_USAGE)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON ({exc})", EXIT_USAGE)
    if isinstance(data, dict) and "schema_version" in data:
        return data
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
    return built


def render(handler: Handler, event: dict[str, Any], thread_ts: str | None) -> dict[str, Any] | bytes:
    """What `handler` would send; a slack_app given `thread_ts` renders for its breakage's thread
    rooted there (the root as this event would post it stands in for the break's)."""
    if thread_ts is None or not isinstance(handler, SlackAppHandler):
        return handler.render(event)
    [root, *_] = handler.render(event)["calls"] or [{"text": "", "blocks": []}]
    since = breakage_of(event) or 0
    thread = Thread(since, handler.channel, thread_ts, {"text": root.get("text"), "blocks": root.get("blocks")})
    return handler.render(event, thread)


@click.command()
@click.argument("event_file", metavar="EVENT.json", type=click.Path(path_type=Path))
@click.option("--routes", "routes_file", help="The routes file (default: $ROUTES_FILE).")
@click.option(
    "--thread",
    "thread_ts",
    metavar="TS",
    help="slack_app: the event's breakage already has its thread, rooted at message TS (default: none yet).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@clear_errors
def preview(event_file: Path, routes_file: str | None, thread_ts: str | None, as_json: bool) -> None:
    """Show which subscriptions EVENT.json matches and exactly what each handler would send.

    Sends nothing. Secrets in what would be sent are printed as `[redacted]`. A slack_app
    handler shows its Web API calls: for a break with no thread yet the root, with --thread TS
    the replies and root updates that event makes in that thread.
    """
    _, routes = read_routes(routes_file, load_settings(quiet=True))
    event = read_event(event_file)
    matched = routes.matching_subscriptions(event)
    outputs = []
    for name in routes.match(event):
        config = routes.handlers[name]
        rendered = render(build_handler(name, config, HandlerContext(routes=routes)), event, thread_ts)
        text = rendered.decode() if isinstance(rendered, bytes) else json.dumps(rendered, ensure_ascii=False)
        body = json.loads(redact_text(text, option_secrets(config.options)))
        outputs.append({"handler": name, "type": config.type, "body": body})
    if as_json:
        result = {
            "event_id": event.get("event_id"),
            "subscriptions": [{"name": s.name, "handlers": list(s.handlers)} for s in matched],
            "deliveries": outputs,
        }
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    echo(f"event {event.get('event_id')}: {event.get('event_type')} {event.get('status')}")
    if not matched:
        echo("no subscription matches: nothing would be sent")
        return
    for s in matched:
        echo(f"matches subscription {s.name!r} (line {s.line}) -> {', '.join(s.handlers)}")
    for out in outputs:
        echo(f"\n--- {out['handler']} ({out['type']}) would send:")
        echo(json.dumps(out["body"], indent=2, ensure_ascii=False))
