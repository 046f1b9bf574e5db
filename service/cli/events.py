"""`circleci-events events list | show ID | replay ID`: what happened to an event and who was told."""

from __future__ import annotations

import json
from typing import Any

import click

from service.cli.common import (
    EXIT_USAGE,
    clear_errors,
    echo,
    emit,
    fail,
    instance_option,
    load_settings,
    one_of,
    require_redis,
)
from workers import operations
from workers.routes import STATUSES

JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
LIST_COLUMNS = ["event_id", "received_at", "event_type", "project", "branch", "name", "status", "transition"]


@click.group()
def events() -> None:
    """Events received: list them, show one's history, replay its deliveries (needs REDIS_URL)."""


@events.command("list")
@click.option(
    "--status",
    callback=one_of(STATUSES, "status"),
    help="Only events with this CircleCI status (success, failed, error, canceled, …; a typo exits 2).",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@JSON
@instance_option
@clear_errors
def list_(status: str | None, limit: int, as_json: bool, instance_pid: int | None) -> None:
    """The newest events first, with the outcome of each handler's delivery."""
    settings = load_settings(quiet=True)
    rows = operations.list_events(
        require_redis(settings, instance_pid=instance_pid), settings, status=status, limit=limit
    )
    if not as_json:
        rows = [r | {"deliveries": ", ".join(f"{d['handler']}:{d['outcome']}" for d in r["deliveries"])} for r in rows]
    emit(rows, [*LIST_COLUMNS, "deliveries"], as_json=as_json)


@events.command()
@click.argument("event_id")
@JSON
@instance_option
@clear_errors
def show(event_id: str, as_json: bool, instance_pid: int | None) -> None:
    """Received at, duplicates, enrichment, transition, and each handler's delivery attempts.

    EVENT_ID may be the start of an id, when only one stored event's id starts so.
    """
    settings = load_settings(quiet=True)
    redis = require_redis(settings, instance_pid=instance_pid)
    try:
        record = operations.event_record(redis, settings, operations.event_id_of(redis, settings, event_id))
    except operations.AmbiguousId as exc:
        fail(exc.message, EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
        return
    for line in describe(record):
        echo(line)


def describe(record: dict[str, Any]) -> list[str]:
    """The record as a person reads it."""
    enrichment = record.get("enrichment") or {}
    transition = record.get("transition")
    state = "complete" if enrichment.get("complete") else f"incomplete ({enrichment.get('reason') or 'no reason'})"
    lines = [
        f"event        {record['event_id']}",
        f"type         {record.get('event_type')}  {record.get('status')}",
        f"project      {record.get('project')}  {record.get('branch') or record.get('tag') or ''}".rstrip(),
        f"name         {record.get('name')}",
        f"received at  {record.get('received_at')}",
        f"request id   {record.get('request_id')}",
        f"duplicates   {record['duplicates']}",
        f"enrichment   {state}, {enrichment.get('api_calls', 0)} API calls",
        f"transition   {_transition(transition)}",
        f"routed to    {', '.join(record.get('handlers') or []) or 'no handler'}",
    ]
    for step in record.get("failed_steps") or []:
        lines.append(f"failed step  {step['job']}: {step['step']} ({step['outcome']})")
        if step.get("log_tail"):
            lines += [f"  | {line}" for line in str(step["log_tail"]).splitlines()]
        elif step.get("no_log_tail"):
            lines.append(f"  (no log tail: {step['no_log_tail']})")
    for d in record["deliveries"]:
        last = f", last status {d['last_status']}" if d["last_status"] is not None else ""
        plural = "" if str(d["attempts"]) == "1" else "s"
        lines.append(f"  {d['handler']}: {d['outcome']} after {d['attempts']} attempt{plural}{last}")
    for a in record["attempts"]:
        status = f"HTTP {a['status']}" if a.get("status") is not None else "-"
        took = f"{a['seconds']:.3f} s" if isinstance(a.get("seconds"), int | float) else "-"
        error = f"  {a['error']}" if a.get("error") else (f"  ({a['reason']})" if a.get("reason") else "")
        lines.append(f"    {a['at']}  {a['handler']}  {a['outcome']}  {status}  {took}{error}")
    for act in record.get("actions") or []:
        said = f"  CircleCI: {act['circleci']}" if act.get("circleci") else ""
        lines.append(
            f"  action {act.get('action')} by {act.get('slack_user')}: {act.get('outcome')}  {act.get('at')}{said}"
        )
    return lines


def _transition(transition: dict[str, Any] | None) -> str:
    if not transition:
        return "-"
    previous = transition.get("previous_status")
    return f"{transition.get('kind')}" + (f" (was {previous})" if previous else "")


@events.command()
@click.argument("event_id")
@click.option("--handler", help="Only this handler (default: every handler the event was routed to).")
@click.option("--force", is_flag=True, help="Post even where a delivery already succeeded.")
@JSON
@instance_option
@clear_errors
def replay(event_id: str, handler: str | None, force: bool, as_json: bool, instance_pid: int | None) -> None:
    """Queue the event's deliveries again; a running worker sends them (once, unless --force).

    EVENT_ID may be the start of an id, when only one stored event's id starts so.
    """
    settings = load_settings(quiet=True)
    redis = require_redis(settings, instance_pid=instance_pid)
    try:
        event_id = operations.event_id_of(redis, settings, event_id)
        outcome = operations.replay(redis, settings, event_id, handler=handler, force=force)
    except (operations.UnknownHandler, operations.AmbiguousId) as exc:
        fail(exc.message, EXIT_USAGE)
    if as_json:
        click.echo(json.dumps({"event_id": event_id, **outcome}))
        return
    for delivery_id in outcome["queued"]:
        echo(f"queued {delivery_id}")
    for delivery_id in outcome["already_delivered"]:
        echo(f"already delivered {delivery_id}: nothing queued (--force posts it again)")
