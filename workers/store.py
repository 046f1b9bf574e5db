"""The enriched event, stored once per event, and the record of what happened to it.

Keys (all expire `ttl` seconds after the event was stored):

    cie:event:<event_id>      string  the enriched event as JSON; delivery jobs read it back
    cie:record:<event_id>     hash    received_at, event_type, project, branch, workflow, pipeline_number, status,
                                      transition, enrichment, duplicates, handlers, and per handler
                                      `<handler>|outcome`, `|attempts`, `|first_attempt_at`,
                                      `|last_attempt_at`, `|last_status`
    cie:attempts:<event_id>   list    one JSON entry per delivery attempt, oldest first; a delivered
                                      one keeps what it sent (`sent`: workers/handlers/transcript.py)
    cie:actions:<event_id>    list    one JSON entry per Slack action on it (workers/actions.py):
                                      at, action, slack_user, outcome, circleci (CircleCI's answer)
    cie:events                zset    event ids scored by receipt time (epoch seconds), for listing
    cie:idx:...                       the console's filter indexes (workers/event_index.py)

`EventStore.record(event_id)` answers "what happened to event X and who was told".
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from typing import Any

import orjson
from redis import Redis
from redis.client import Pipeline

from config.clock import SYSTEM_CLOCK, Clock
from workers import event_index
from workers.event_index import KeyRefresh
from workers.timestamps import parse_time

EVENT_PREFIX = "cie:event:"
RECORD_PREFIX = "cie:record:"
ATTEMPTS_PREFIX = "cie:attempts:"
ACTIONS_PREFIX = "cie:actions:"
EVENTS_INDEX = "cie:events"
DEFAULT_TTL = 7 * 24 * 3600
HANDLER_FIELDS = ("outcome", "attempts", "first_attempt_at", "last_attempt_at", "last_status")


def received_epoch(event: dict[str, Any], clock: Clock = SYSTEM_CLOCK) -> float:
    """The event's receipt time in epoch seconds; now when it carries none we can read."""
    moment = parse_time(event.get("received_at"))
    return moment.timestamp() if moment else clock.now()


class EventStore:
    """Stores enriched events and their delivery history in Redis."""

    def __init__(
        self, redis: Redis, *, ttl: int = DEFAULT_TTL, clock: Clock = SYSTEM_CLOCK, refresh: KeyRefresh | None = None
    ) -> None:
        """`refresh`: the worker process's record of the index keys it refreshed (workers/event_index.py)."""
        self.redis = redis
        self.ttl = ttl
        self.clock = clock
        self.refresh = refresh

    def save(self, event: dict[str, Any], *, handlers: list[str] | None = None, pipe: Pipeline | None = None) -> None:
        """Store the event and its summary, and index it; saving again refreshes both. On `pipe`,
        queued (its caller sends it with more)."""
        if pipe is None:
            with self.redis.pipeline(transaction=False) as own:
                self.save(event, handlers=handlers, pipe=own)
                own.execute()
            return
        event_id = event["event_id"]
        received = received_epoch(event, self.clock)
        summary: dict[Any, Any] = _summary(event)
        if handlers is not None:
            summary["handlers"] = json.dumps(handlers)
        record_key = RECORD_PREFIX + event_id
        pipe.set(EVENT_PREFIX + event_id, orjson.dumps(event), ex=self.ttl)
        pipe.hset(record_key, mapping=summary)
        pipe.expire(record_key, self.ttl)
        pipe.zadd(EVENTS_INDEX, {event_id: received})
        event_index.add(pipe, event_id, _indexed(summary), score=received, ttl=self.ttl, now=self.clock.now(),
                        refresh=self.refresh)  # fmt: skip

    def trim(self) -> int:
        """Drop index entries of events past their TTL (the worker's maintenance); how many."""
        now = self.clock.now()
        event_index.trim(self.redis, ttl=self.ttl, now=now)
        return int(self.redis.zremrangebyscore(EVENTS_INDEX, 0, now - self.ttl))

    def load(self, event_id: str) -> dict[str, Any] | None:
        """The stored enriched event, or None once it has expired."""
        raw = self.redis.get(EVENT_PREFIX + event_id)
        return dict(orjson.loads(raw)) if raw is not None else None

    def record_duplicate(self, event_id: str) -> int:
        """Count one more delivery of an event already admitted; returns the count."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(RECORD_PREFIX + event_id, "duplicates", 1)
            pipe.expire(RECORD_PREFIX + event_id, self.ttl)
            return int(pipe.execute()[0])

    def record_attempt(
        self,
        event_id: str,
        handler: str,
        *,
        outcome: str,
        status: int | None = None,
        reason: str = "",
        error: str = "",
        seconds: float | None = None,
        sent: list[dict[str, str]] | None = None,
        pipe: Pipeline | None = None,
        first: bool = False,
    ) -> int:
        """Append one delivery attempt (what happened: the status or the error, how long the send
        took; for a delivered one, what it sent: workers/handlers/transcript.py) and update the
        handler's fields; returns its attempt count. On `pipe`, queued (its first reply is the
        count) and -1 returned. `first`: the handler's first attempt, made right after `save` (a
        fan-out's, not a rerun's): its fields in one write, the record's expiry as `save` set it."""
        now = self.clock.now()
        key = RECORD_PREFIX + event_id
        entry: dict[str, Any] = {"handler": handler, "at": now, "outcome": outcome, "status": status, "reason": reason,
                 "error": error, "seconds": None if seconds is None else round(seconds, 3)}  # fmt: skip
        if sent:  # compressed: a Slack message's JSON is ~5 KB, a third of it once packed
            entry["sent"] = base64.b64encode(zlib.compress(orjson.dumps(sent))).decode()
        last: dict[Any, Any] = {f"{handler}|last_attempt_at": now, f"{handler}|outcome": outcome,
                f"{handler}|last_status": "" if status is None else status}  # fmt: skip
        if pipe is None:
            with self.redis.pipeline(transaction=False) as own:
                self.record_attempt(event_id, handler, outcome=outcome, status=status, reason=reason, error=error,
                                    seconds=seconds, sent=sent, pipe=own, first=first)  # fmt: skip
                counted = own.execute()[0]
                return 1 if first else int(counted)
        # one handler's attempts are one at a time (the send lock): no transaction needed
        if first:
            pipe.hset(key, mapping={f"{handler}|attempts": 1, f"{handler}|first_attempt_at": now, **last})
        else:
            pipe.hincrby(key, f"{handler}|attempts", 1)
            pipe.hsetnx(key, f"{handler}|first_attempt_at", now)
            pipe.hset(key, mapping=last)
            pipe.expire(key, self.ttl)
        pipe.rpush(ATTEMPTS_PREFIX + event_id, json.dumps(entry))
        pipe.expire(ATTEMPTS_PREFIX + event_id, self.ttl)
        event_index.add(pipe, event_id, {"outcome": outcome}, score=now, ttl=self.ttl, now=now, refresh=self.refresh,
                        new=False)  # fmt: skip
        return -1

    def record_action(self, event_id: str, entry: dict[str, Any]) -> None:
        """Append one action taken (or refused) on the event from Slack; `events show` lists them."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(ACTIONS_PREFIX + event_id, json.dumps({"at": self.clock.now(), **entry}))
            pipe.expire(ACTIONS_PREFIX + event_id, self.ttl)
            pipe.execute()

    def record_outcome(self, event_id: str, handler: str, outcome: str) -> None:
        """Set a handler's outcome without an attempt (queued, skipped_duplicate, replayed)."""
        now = self.clock.now()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(RECORD_PREFIX + event_id, f"{handler}|outcome", outcome)
            event_index.add(pipe, event_id, {"outcome": outcome}, score=now, ttl=self.ttl, now=now,
                            refresh=self.refresh, new=False)  # fmt: skip
            pipe.execute()

    def handler_state(self, event_id: str, handler: str) -> dict[str, Any]:
        """One handler's fields of the record: outcome, attempts, first/last attempt, last status."""
        values = self.redis.hmget(RECORD_PREFIX + event_id, [f"{handler}|{f}" for f in HANDLER_FIELDS])
        return _handler_fields(dict(zip(HANDLER_FIELDS, values, strict=True)))

    def record(self, event_id: str) -> dict[str, Any] | None:
        """What happened to the event: summary, duplicates, handlers with outcomes, attempts."""
        summary = _parsed(event_id, self.redis.hgetall(RECORD_PREFIX + event_id))
        if summary is None:
            return None
        attempts = self.redis.lrange(ATTEMPTS_PREFIX + event_id, 0, -1)
        summary["attempts"] = [_unpacked(json.loads(a)) for a in attempts]
        summary["actions"] = [json.loads(a) for a in self.redis.lrange(ACTIONS_PREFIX + event_id, 0, -1)]
        return summary

    def summaries(self, event_ids: list[str]) -> list[dict[str, Any] | None]:
        """The records of `event_ids` without their attempts, in one round trip; None for an expired one."""
        with self.redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.hgetall(RECORD_PREFIX + event_id)
            raws = pipe.execute()
        return [_parsed(event_id, raw) for event_id, raw in zip(event_ids, raws, strict=True)]

    def ids_starting(self, prefix: str) -> list[str]:
        """Stored event ids that start with `prefix`, newest first (a walk of the index: for
        operators typing a short id, not for the event path)."""
        ids = members_starting(self.redis, EVENTS_INDEX, prefix)
        return [i for i, alive in zip(ids, self._exist(ids), strict=True) if alive]

    def _exist(self, event_ids: list[str]) -> list[bool]:
        with self.redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.exists(RECORD_PREFIX + event_id)
            return [bool(n) for n in pipe.execute()]

    def recent(self, *, limit: int = 50, since: float | None = None) -> list[str]:
        """Event ids received since `since` (epoch seconds), newest first."""
        ids = self.redis.zrevrangebyscore(EVENTS_INDEX, "+inf", since if since is not None else "-inf", 0, limit)
        return [text(i) for i in ids]


def members_starting(redis: Redis, index: str, prefix: str) -> list[str]:
    """The members of the sorted set `index` that start with `prefix`, highest score (newest) first."""
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    found = sorted(redis.zscan_iter(index, match=pattern, count=1000), key=lambda m: -m[1])
    return [text(member) for member, _ in found]


def _unpacked(attempt: dict[str, Any]) -> dict[str, Any]:
    """An attempt entry with what it sent readable again (record_attempt packs it)."""
    packed = attempt.get("sent")
    if isinstance(packed, str):
        try:
            attempt["sent"] = orjson.loads(zlib.decompress(base64.b64decode(packed)))
        except (ValueError, zlib.error):
            attempt["sent"] = [{"to": "?", "body": "(what it sent could not be read back)"}]
    return attempt


def text(value: Any) -> str:
    """A Redis reply as str (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _parsed(event_id: str, raw: dict[Any, Any]) -> dict[str, Any] | None:
    """A record hash as a summary with its deliveries per handler; None for an empty hash."""
    if not raw:
        return None
    fields = {text(k): text(v) for k, v in raw.items()}
    per_handler: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {"event_id": event_id}
    for name, value in fields.items():
        handler, sep, field = name.rpartition("|")
        if sep:
            per_handler.setdefault(handler, {})[field] = value
        elif name in ("transition", "enrichment", "handlers"):
            summary[name] = json.loads(value)
        else:
            summary[name] = value
    summary["duplicates"] = int(summary.get("duplicates", 0))
    summary["deliveries"] = {h: _handler_fields(v) for h, v in sorted(per_handler.items())}
    return summary


def _indexed(summary: dict[str, Any]) -> dict[str, Any]:
    """The record's values the console filters on, by index field (workers/event_index.py)."""
    transition = event_index_kind(summary.get("transition"))
    return {
        "project": summary.get("project"),
        "branch": summary.get("branch") or summary.get("tag"),
        "workflow": summary.get("workflow"),
        "status": summary.get("status"),
        "transition": transition,
        "pipeline": summary.get("pipeline_number"),
    }


def event_index_kind(transition_json: Any) -> str | None:
    """The transition kind out of the record's JSON `transition` field."""
    data = json.loads(transition_json) if isinstance(transition_json, str) else None
    return data.get("kind") if isinstance(data, dict) else None


def _summary(event: dict[str, Any]) -> dict[str, Any]:
    vcs = event.get("vcs") or {}
    subject = event.get("job") or event.get("workflow") or {}
    values = {
        "event_type": event.get("event_type"),
        "received_at": event.get("received_at"),
        "request_id": event.get("request_id"),
        "project": (event.get("project") or {}).get("slug"),
        "branch": vcs.get("branch"),
        "tag": vcs.get("tag"),
        "workflow": (event.get("workflow") or {}).get("name"),
        "pipeline_number": (event.get("pipeline") or {}).get("number"),
        "name": subject.get("name"),
        "status": event.get("status") or subject.get("status"),
        "transition": json.dumps(event.get("transition")),
        "enrichment": json.dumps(event.get("enrichment")),
    }
    return {k: v for k, v in values.items() if v is not None}


def _handler_fields(values: dict[str, Any]) -> dict[str, Any]:
    def get(name: str) -> str | None:
        value = values.get(name)
        return None if value is None else text(value)

    attempts, last_status = get("attempts"), get("last_status")
    first, last = get("first_attempt_at"), get("last_attempt_at")
    return {
        "outcome": get("outcome"),
        "attempts": int(attempts) if attempts else 0,
        "first_attempt_at": float(first) if first else None,
        "last_attempt_at": float(last) if last else None,
        "last_status": int(last_status) if last_status else None,
    }
