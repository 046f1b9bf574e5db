"""`circleci-events dead-letters list | show ID | replay (ID | --all) | purge [ID...]`.

An ID may be the start of a delivery id (`<event id>:<handler>`) when only one dead letter's id
starts so; several: exit 2 listing them, as `events show` does.
"""

from __future__ import annotations

import json
from typing import Any

import click
from redis import Redis

from config.settings import Settings
from service.cli.common import (
    EXIT_USAGE,
    clear_errors,
    emit,
    emit_one,
    fail,
    instance_option,
    load_settings,
    require_redis,
)
from workers import operations

WHY_CHARS = 60
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group("dead-letters")
def dead_letters() -> None:
    """Deliveries that ran out of retries or were refused (needs REDIS_URL)."""


@dead_letters.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@JSON
@instance_option
@clear_errors
def list_(limit: int, as_json: bool, instance_pid: int | None) -> None:
    """The newest dead letters first."""
    settings = load_settings(quiet=True)
    letters = operations.dead_letters(require_redis(settings, instance_pid=instance_pid), settings, limit=limit)
    if as_json:
        emit(letters, [], as_json=True)
        return
    rows = [{**letter, "why": why(letter)} for letter in letters]
    emit(rows, ["delivery_id", "handler", "reason", "why", "attempts", "dead_at"], as_json=False)


def why(letter: dict[str, Any]) -> str:
    """The last answer in a few words: `HTTP 404: no_team`, `connection refused (...)`."""
    excerpt = " ".join(str(letter.get("body_excerpt") or "").split())
    status = letter.get("last_status")
    # a 2xx that still failed (Slack's Web API answers 200 with ok: false): the answer says why
    text = f"HTTP {status}: {excerpt}" if status and not 200 <= status < 300 else excerpt
    return text if len(text) <= WHY_CHARS else text[: WHY_CHARS - 1] + "…"


@dead_letters.command()
@click.argument("delivery_id")
@JSON
@instance_option
@clear_errors
def show(delivery_id: str, as_json: bool, instance_pid: int | None) -> None:
    """One dead letter: its event, handler, reason, last status and answer, attempts.

    DELIVERY_ID may be the start of an id, when only one dead letter's id starts so.
    """
    settings = load_settings(quiet=True)
    redis = require_redis(settings, instance_pid=instance_pid)
    [delivery_id] = delivery_ids(redis, settings, [delivery_id])
    emit_one(operations.dead_letter(redis, settings, delivery_id), as_json=as_json)


def delivery_ids(redis: Redis, settings: Settings, prefixes: list[str]) -> list[str]:
    """The whole delivery id each prefix names; an ambiguous one exits 2 listing the candidates."""
    try:
        return [operations.dead_letter_id_of(redis, settings, prefix) for prefix in prefixes]
    except operations.AmbiguousId as exc:
        fail(exc.message, EXIT_USAGE)


@dead_letters.command()
@click.argument("delivery_id", required=False)
@click.option("--all", "every", is_flag=True, help="Replay every dead letter.")
@JSON
@instance_option
@clear_errors
def replay(delivery_id: str | None, every: bool, as_json: bool, instance_pid: int | None) -> None:
    """Queue DELIVERY_ID (or --all) again; a running worker sends each once.

    DELIVERY_ID may be the start of an id, when only one dead letter's id starts so.
    """
    if bool(delivery_id) == every:
        fail("give a DELIVERY_ID or --all", EXIT_USAGE)
    settings = load_settings(quiet=True)
    redis = require_redis(settings, instance_pid=instance_pid)
    if delivery_id:
        ids = delivery_ids(redis, settings, [delivery_id])
    else:
        ids = [x["delivery_id"] for x in operations.dead_letters(redis, settings, limit=operations.ALL)]
    queued = [{"delivery_id": i, "job_id": operations.replay_dead_letter(redis, settings, i)} for i in ids]
    if as_json:
        click.echo(json.dumps(queued))
        return
    for row in queued:
        click.echo(f"queued {row['delivery_id']}")
    if not queued:
        click.echo("no dead letters")


@dead_letters.command()
@click.argument("delivery_ids_given", metavar="[DELIVERY_ID]...", nargs=-1)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@instance_option
@clear_errors
def purge(delivery_ids_given: tuple[str, ...], yes: bool, instance_pid: int | None) -> None:
    """Forget the dead letters named (each by its id or the start of it), or every one when none is
    named (their events stay until they expire)."""
    settings = load_settings(quiet=True)
    redis = require_redis(settings, instance_pid=instance_pid)
    letters = operations.letters_of(redis, settings)
    if delivery_ids_given:
        ids = list(dict.fromkeys(delivery_ids(redis, settings, list(delivery_ids_given))))
    else:
        ids = [x.delivery_id for x in letters.list(limit=operations.ALL)]
    if ids and not yes:
        click.confirm(f"forget {len(ids)} dead letters?", abort=True, err=True)
    removed = sum(letters.remove(i) for i in ids)
    click.echo(f"purged {removed} dead letters")
