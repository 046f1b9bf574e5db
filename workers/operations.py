"""What operators ask of Redis, shared by the CLI and the admin API.

    list_events(redis, settings, status=, limit=)   newest first, one summary row each
    event_id_of(redis, settings, prefix)            the one stored event id starting with prefix
    dead_letter_id_of(redis, settings, prefix)      the one dead letter's delivery id starting with prefix
    event_record(redis, settings, event_id)         what happened to one event
    replay(redis, settings, event_id, handler=, force=)   queue an event's deliveries again (those
                                                    not delivered yet, unless forced)
    dead_letters(redis, settings, limit=)           newest first
    replay_dead_letter(redis, settings, delivery_id)
    find_events(redis, settings, query, limit=, via=, before=)   one page of a filtered listing
    branch_health(redis, settings, project=, ref=)   the transition state of every ref
    purge_dead_letter(redis, settings, delivery_id)
    replay_dead_letters(redis, settings, handler=, reason=)     bulk replay by filter
    overview(redis, settings)                       events per minute, outcomes, queues, workers, and the
                                                    shipped alert rules evaluated now (workers/alert_rules.py)
    event_document(redis, settings, event_id)       the record and the stored enriched event

What they return is what the CLI's `--json` and the admin API show, one shape for both:
deliveries are objects (`handler`, `outcome`, `attempts`, ...) and every time is ISO 8601 text
(`iso_time`), though Redis keeps epoch seconds. All calls are synchronous redis-py; the web
process runs them in its thread pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Worker

from config.errors import CircleCIEventsError, ConfigurationError
from config.settings import Settings
from workers import alert_rules
from workers.delivery.dead_letters import DEAD_INDEX, UNDECODABLE, DeadLetter, DeadLetters
from workers.delivery.jobs import delivery_id_of
from workers.delivery.lock import DeliveryLock
from workers.delivery.replay import replay_dead_letter as replay_letter
from workers.delivery.replay import replay_event
from workers.event_index import EVENTS_INDEX, MAX_WALK, EventQuery, in_every_index, index_for, index_key, walk
from workers.message import Message
from workers.metric_window import Labels
from workers.ref_states import MAX_STATES, read_states
from workers.routes_file import load_routes
from workers.store import EventStore, text
from workers.timestamps import iso_time

# With a status filter, at most this many recent events are read to find `limit` matches.
STATUS_SCAN = 5000
ALL = 100_000
CANDIDATES = 10  # ids listed when a prefix is ambiguous


class NotFound(CircleCIEventsError):
    """An event or dead letter that is not (or no longer) stored."""

    code = "not_found"


class UnknownHandler(NotFound):
    """A replay naming a handler neither the routes file nor the event's record knows."""

    code = "unknown_handler"


class AmbiguousId(CircleCIEventsError):
    """An id prefix that more than one stored event (or dead letter) starts with; `details["candidates"]` lists them."""

    code = "ambiguous_id"


class NotReplayable(CircleCIEventsError):
    """A dead letter whose job could not be read: there is nothing to send again."""

    code = "not_replayable"


def store_of(redis: Redis, settings: Settings) -> EventStore:
    return EventStore(redis, ttl=settings.enriched_event_ttl_seconds)


def letters_of(redis: Redis, settings: Settings) -> DeadLetters:
    return DeadLetters(redis, ttl=settings.enriched_event_ttl_seconds)


def list_events(
    redis: Redis, settings: Settings, *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Summary rows of the newest events, optionally only those with `status`."""
    store = store_of(redis, settings)
    rows: list[dict[str, Any]] = []
    for event_id in store.recent(limit=STATUS_SCAN if status else limit):
        record = store.record(event_id)
        if record is None or (status and record.get("status") != status):
            continue
        rows.append(summary_row(record))
        if len(rows) >= limit:
            break
    return rows


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """One line of a listing: what, where, how it went and who was told."""
    transition = record.get("transition") or {}
    enrichment = record.get("enrichment") or {}
    deliveries = record.get("deliveries") or {}
    return {
        "event_id": record["event_id"],
        "received_at": record.get("received_at"),
        "event_type": record.get("event_type"),
        "project": record.get("project"),
        "branch": record.get("branch") or record.get("tag"),
        "name": record.get("name"),
        "status": record.get("status"),
        "transition": transition.get("kind"),
        "complete": enrichment.get("complete"),
        "deliveries": [
            {"handler": h, "outcome": d["outcome"], "attempts": d["attempts"]} for h, d in deliveries.items()
        ],
    }


def event_id_of(redis: Redis, settings: Settings, prefix: str) -> str:
    """The stored event whose id is `prefix`, else the one whose id starts with it; NotFound when
    none does, AmbiguousId (listing them) when several do."""
    store = store_of(redis, settings)
    gone = f"no event {prefix!r} is stored (never received, or expired after the retention time)"
    return _one_id(prefix, store.record(prefix) is not None, store.ids_starting, "event", gone)


def dead_letter_id_of(redis: Redis, settings: Settings, prefix: str) -> str:
    """The dead letter whose delivery id is `prefix`, else the one whose id starts with it; NotFound
    when none does, AmbiguousId (listing them) when several do (an event id's start matches each
    of its handlers' dead letters)."""
    letters = letters_of(redis, settings)
    gone = f"no dead letter {prefix!r} (replayed, purged or expired)"
    return _one_id(prefix, letters.get(prefix) is not None, letters.ids_starting, "dead letter", gone)


def _one_id(prefix: str, exact: bool, starting: Callable[[str], list[str]], noun: str, gone: str) -> str:
    if exact:
        return prefix
    found = starting(prefix)
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(gone)
    shown = ", ".join(found[:CANDIDATES]) + (f" and {len(found) - CANDIDATES} more" if len(found) > CANDIDATES else "")
    raise AmbiguousId(
        f"{len(found)} {noun}s start with {prefix!r}: {shown}; give more of the id", details={"candidates": found}
    )


def event_record(redis: Redis, settings: Settings, event_id: str) -> dict[str, Any]:
    """The event's full record; raises NotFound when it is not stored."""
    record = store_of(redis, settings).record(event_id)
    if record is None:
        raise NotFound(f"no event {event_id!r} is stored (never received, or expired after the retention time)")
    deliveries = [
        {"handler": handler, **d} | {k: iso_time(d[k]) for k in ("first_attempt_at", "last_attempt_at")}
        for handler, d in record["deliveries"].items()
    ]
    attempts = [a | {"at": iso_time(a.get("at"))} for a in record["attempts"]]
    event = store_of(redis, settings).load(event_id) or {}
    actions = [a | {"at": iso_time(a.get("at"))} for a in record["actions"]]
    return record | {
        "deliveries": deliveries,
        "attempts": attempts,
        "actions": actions,
        "failed_steps": Message.from_event(event).failed_steps(),
    }


def replay(
    redis: Redis, settings: Settings, event_id: str, *, handler: str | None = None, force: bool = False
) -> dict[str, list[str]]:
    """Queue the event's deliveries again: `queued` and, left alone unless `force`, `already_delivered`
    (delivery ids). NotFound when the enriched event has expired, UnknownHandler for a handler
    that neither the routes file nor the event's record names."""
    store = store_of(redis, settings)
    if store.load(event_id) is None:
        raise NotFound(f"no enriched event {event_id!r} is stored (never received, or expired); nothing to replay")
    on_record = list((store.record(event_id) or {}).get("handlers") or [])
    if handler is not None:
        known = sorted({*on_record, *configured_handlers(settings)})
        if handler not in known:
            raise UnknownHandler(f"no handler {handler!r}: the handlers are {', '.join(known) or '(none)'}")
    names = [handler] if handler else on_record
    if not names:
        raise NotFound(f"event {event_id!r} has no handlers on record; name one with a handler to replay to")
    delivered = (
        [] if force else [n for n in names if DeliveryLock(redis, delivery_id_of(event_id, n), ttl=1).delivered()]
    )
    pending = [n for n in names if n not in delivered]
    queued = [q for n in pending for q in replay_event(redis, event_id, n, force, settings=settings)]
    return {"queued": queued, "already_delivered": [delivery_id_of(event_id, n) for n in delivered]}


def configured_handlers(settings: Settings) -> list[str]:
    """The routes file's handler names; none when it cannot be read here (the web may lack their secrets)."""
    try:
        return list(load_routes(settings.routes_file, settings.environ).handlers)
    except ConfigurationError:
        return []


def dead_letters(redis: Redis, settings: Settings, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters first, as `dead_letter` shows each."""
    return [letter_document(x) for x in letters_of(redis, settings).list(limit=limit)]


def dead_letter(redis: Redis, settings: Settings, delivery_id: str) -> dict[str, Any]:
    letter = letters_of(redis, settings).get(delivery_id)
    if letter is None:
        raise NotFound(f"no dead letter {delivery_id!r} (replayed, purged or expired)")
    return letter_document(letter)


def letter_document(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter with its times as ISO 8601."""
    data = letter.to_dict()
    return data | {k: iso_time(data[k]) for k in ("first_attempt_at", "last_attempt_at", "dead_at")}


def replay_dead_letter(redis: Redis, settings: Settings, delivery_id: str) -> str:
    """Queue a dead letter's delivery again; returns the job id; NotFound when there is none."""
    letter = letters_of(redis, settings).get(delivery_id)
    if letter is not None and letter.reason == UNDECODABLE:
        raise NotReplayable(
            f"dead letter {delivery_id!r} is a job the worker could not read ({letter.body_excerpt}); "
            "there is nothing to send again: inspect it with `rq info` / the failed job registry, then purge it"
        )
    job_id = replay_letter(redis, delivery_id, settings=settings)
    if job_id is None:
        raise NotFound(f"no dead letter {delivery_id!r} (replayed, purged or expired)")
    return job_id


def find_events(
    redis: Redis,
    settings: Settings,
    query: EventQuery,
    *,
    limit: int = 50,
    via: str | None = None,
    before: float | None = None,
) -> dict[str, Any]:
    """One page of the events matching `query`, newest first, through the worker's indexes
    (workers/event_index.py): `rows`, `next` ({via, before} for the next page, None at the end)
    and `searched` (how many candidates were read; at most MAX_WALK per page)."""
    store = store_of(redis, settings)
    via = index_for(redis, query, via)
    rows: list[dict[str, Any]] = []
    searched, last = 0, None
    for chunk in walk(redis, query, via, before, first=limit + 1):
        searched += len(chunk)
        last = chunk[-1][1] if chunk else last
        likely = in_every_index(redis, query, via, chunk)
        records = store.summaries([event_id for event_id, _ in likely])
        for (_, score), record in zip(likely, records, strict=True):
            if record is not None and query.matches(record):
                rows.append(summary_row(record) | {"cursor": score})
                if len(rows) > limit:
                    return {"rows": rows[:limit], "next": {"via": via, "before": rows[limit - 1]["cursor"]},
                            "searched": searched}  # fmt: skip
    exhausted = searched < MAX_WALK
    page_end = None if exhausted or last is None else {"via": via, "before": last}
    return {"rows": rows, "next": page_end, "searched": searched}


def branch_health(
    redis: Redis, settings: Settings, *, project: str | None = None, ref: str | None = None, limit: int = MAX_STATES
) -> list[dict[str, Any]]:
    """The transition state of every (project, ref, workflow) the worker keeps, as plain data; of the
    `limit` most recently written."""
    return [state.to_dict() for state in read_states(redis, project=project, ref=ref, limit=limit)]


def purge_dead_letter(redis: Redis, settings: Settings, delivery_id: str) -> None:
    """Forget a dead letter without sending it; NotFound when there is none."""
    if not letters_of(redis, settings).remove(delivery_id):
        raise NotFound(f"no dead letter {delivery_id!r} (replayed, purged or expired)")


def replay_dead_letters(
    redis: Redis, settings: Settings, *, handler: str | None = None, reason: str | None = None
) -> dict[str, list[str]]:
    """Queue again every dead letter of `handler` and/or with `reason` (all of them when neither is
    given): `queued` delivery ids, and `skipped` ones that cannot be replayed or went meanwhile."""
    queued, skipped = [], []
    for letter in letters_of(redis, settings).list(limit=ALL):
        if (handler and letter.handler != handler) or (reason and letter.reason != reason):
            continue
        try:
            replay_dead_letter(redis, settings, letter.delivery_id)
        except (NotFound, NotReplayable):
            skipped.append(letter.delivery_id)
        else:
            queued.append(letter.delivery_id)
    return {"queued": queued, "skipped": skipped}


def overview(redis: Redis, settings: Settings, *, now: float | None = None) -> dict[str, Any]:
    """The numbers an operator glances at: events received in the last minute and hour, handler
    outcomes of the last hour (from the outcome indexes), dead letters, queue depths, and the live
    RQ workers with their last heartbeat; `alerts`: each rule of config/prometheus-alerts.yaml with
    its state now, from the numbers /metrics counts (the queue depths read here are its gauge)."""
    now = time.time() if now is None else now
    hour = now - 3600
    outcomes = ("delivered", "retrying", "dead_lettered", "rejected", "queued")
    with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(EVENTS_INDEX, now - 60, "+inf")
        pipe.zcount(EVENTS_INDEX, hour, "+inf")
        for outcome in outcomes:
            pipe.zcount(index_key("outcome", outcome), hour, "+inf")
        pipe.zcard(DEAD_INDEX)
        pipe.smembers("rq:queues")
        minute, last_hour, *counts, dead, queues = pipe.execute()
    with redis.pipeline(transaction=False) as pipe:
        names = sorted(text(q) for q in queues)
        for name in names:
            pipe.llen(name)
        depths = pipe.execute()
    workers = [
        {"name": w.name, "state": w.get_state(), "last_heartbeat": iso_time(w.last_heartbeat.timestamp())
         if w.last_heartbeat else None}
        for w in Worker.all(connection=redis)
    ]  # fmt: skip
    queue_depths = {name.removeprefix("rq:queue:"): int(d) for name, d in zip(names, depths, strict=True)}
    depth: dict[Labels, float] = {(("queue", name),): float(d) for name, d in queue_depths.items()}
    gauges = {"circleci_events_queue_depth": depth}
    return {
        "events_last_minute": int(minute),
        "events_last_hour": int(last_hour),
        "outcomes_last_hour": dict(zip(outcomes, (int(c) for c in counts), strict=True)),
        "dead_letters": int(dead),
        "queues": queue_depths,
        "workers": sorted(workers, key=lambda w: w["name"]),
        "alerts": alert_rules.evaluate(alert_rules.Observed(redis, now, gauges)),
    }


def event_document(redis: Redis, settings: Settings, event_id: str) -> dict[str, Any]:
    """What the console's event page shows: `record` (event_record's) and `event`, the stored
    enriched event (what CircleCI sent plus what the enrichment added; None once it has expired)."""
    record = event_record(redis, settings, event_id)
    return {"record": record, "event": store_of(redis, settings).load(event_id)}
