"""Indexes of the stored events by what the console filters on, kept by the worker as it stores them.

    cie:idx:<field>:<value>   zset  event ids scored by receipt time (epoch seconds); fields:
                                    project, branch, workflow, status, transition;
                                    `outcome` is scored by the time of the handler's last outcome
    cie:idx:pipelines         zset  every event id scored by its pipeline number: a key per number
                                    was a new key with every event (its EXPIRE and `cie:idx:keys`
                                    entry two commands more per event); trimmed like `cie:idx:ids`
    cie:idx:ids               zset  every event id with score 0, for a prefix by ZRANGEBYLEX
    cie:idx:keys              zset  the per-value index keys above, scored by their last write

Each per-value key expires `ttl` seconds after its last refresh, like the events; the worker's
maintenance (`trim`) drops members older than the TTL from the keys still alive and expired ids
from `cie:idx:ids`. A worker process refreshes a key (its EXPIRE and its score in `cie:idx:keys`)
at most once per REFRESH_SECONDS (`KeyRefresh`, held by its context), not with every event: two
commands per field per event less. The price: a key written again within that time without a
refresh expires up to REFRESH_SECONDS before its newest member's event does, so at the end of
an event's TTL (7 days by default) its index entry may go up to 10 minutes before its record.

A member can outlive its event or its handler's outcome can change (an event
moves from `retrying` to `delivered`): an index gives candidates, and every candidate is checked
against its record before it is shown, so a stale member costs a read, never a wrong row.

A query walks the smallest index that applies, newest first, `CHUNK` ids at a time, keeps the
ids every other applicable index holds (ZMSCORE), reads only their records, and stops after
`MAX_WALK` candidates: no request reads more than that, whatever the store holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from redis import Redis
from redis.client import Pipeline

IDX_PREFIX = "cie:idx:"
IDS = "cie:idx:ids"
PIPELINES = "cie:idx:pipelines"
KEYS = "cie:idx:keys"
EVENTS_INDEX = "cie:events"
FIELDS = ("project", "branch", "workflow", "status", "transition", "pipeline", "outcome")
CHUNK = 200
MAX_WALK = 5000


def index_key(field: str, value: str) -> str:
    return f"{IDX_PREFIX}{field}:{value}"


REFRESH_SECONDS = 600.0


class KeyRefresh:
    """When this process last refreshed each key whose TTL it keeps: an index key (its EXPIRE and its
    `cie:idx:keys` score), a per-minute count (workers/metric_window.py: its EXPIRE)."""

    def __init__(self, every: float = REFRESH_SECONDS) -> None:
        self.every = every
        self._at: dict[str, float] = {}

    def due(self, key: str, now: float, ttl: float) -> bool:
        """True (and noted) when `key` was not refreshed within `every` seconds of `now` (or half its
        `ttl`, when shorter: a key refreshed is never gone before its next refresh)."""
        last = self._at.get(key)
        if last is not None and now - last < min(self.every, ttl / 2):
            return False
        if len(self._at) > 100_000:  # many distinct values (pipeline numbers): forget, refresh again
            self._at.clear()
        self._at[key] = now
        return True


def add(
    pipe: Pipeline,
    event_id: str,
    values: dict[str, Any],
    *,
    score: float,
    ttl: int,
    now: float,
    refresh: KeyRefresh | None = None,
    new: bool = True,
) -> None:
    """Queue on `pipe` the writes that index `event_id` under each of `values` (field -> value);
    `now` is when each index key was last written, for `trim`; with `refresh`, a key's EXPIRE and
    score are written only when it is due. `new`: the event is not indexed yet (else its id is in
    `cie:idx:ids` already: an outcome's update)."""
    if new:
        pipe.zadd(IDS, {event_id: 0})
    for field, value in values.items():
        if value is None or value == "":
            continue
        if field == "pipeline":
            if (number := _number(value)) is not None:
                pipe.zadd(PIPELINES, {event_id: number})
            continue
        key = index_key(field, str(value))
        pipe.zadd(key, {event_id: score})
        if refresh is None or refresh.due(key, now, ttl):
            pipe.expire(key, ttl)
            pipe.zadd(KEYS, {key: now})


def trim(redis: Redis, *, ttl: int, now: float) -> int:
    """Drop members older than `ttl` before `now` from every index and forget expired keys; how many members went."""
    cutoff = now - ttl
    expired_ids = redis.zrangebyscore(EVENTS_INDEX, 0, cutoff)
    gone: list[bytes] = redis.zrangebyscore(KEYS, 0, cutoff)  # type: ignore[assignment]
    live: list[bytes] = redis.zrangebyscore(KEYS, cutoff, "+inf")  # type: ignore[assignment]
    with redis.pipeline(transaction=False) as pipe:
        if expired_ids:
            pipe.zrem(IDS, *expired_ids)
            pipe.zrem(PIPELINES, *expired_ids)
        if gone:
            pipe.zrem(KEYS, *gone)
        for key in live:
            pipe.zremrangebyscore(key, 0, cutoff)
        removed = pipe.execute()
    return sum(int(n) for n in removed)


@dataclass(frozen=True)
class EventQuery:
    """What the events list is filtered on; every given field must hold (an empty one is no filter)."""

    project: str = ""
    branch: str = ""
    workflow: str = ""
    status: str = ""
    transition: str = ""
    pipeline: str = ""
    outcome: str = ""
    id_prefix: str = ""

    @classmethod
    def from_mapping(cls, values: Any) -> EventQuery:
        names = {f.name for f in fields(cls)}
        return cls(**{k: str(values.get(k) or "").strip() for k in names})

    def indexed(self) -> dict[str, str]:
        """The equality filters, each with its index."""
        return {f: getattr(self, f) for f in FIELDS if getattr(self, f)}

    def matches(self, record: dict[str, Any]) -> bool:
        """True when the stored record satisfies every filter (the exact check behind the index)."""
        transition = record.get("transition") or {}
        outcomes = {d.get("outcome") for d in (record.get("deliveries") or {}).values()}
        actual = {
            "project": record.get("project"),
            "branch": record.get("branch") or record.get("tag"),
            "workflow": record.get("workflow"),
            "status": record.get("status"),
            "transition": transition.get("kind") if isinstance(transition, dict) else None,
            "pipeline": record.get("pipeline_number"),
        }
        for field, wanted in self.indexed().items():
            if field == "outcome":
                if wanted not in outcomes:
                    return False
            elif str(actual.get(field) or "") != wanted:
                return False
        return str(record["event_id"]).startswith(self.id_prefix)


def index_for(redis: Redis, query: EventQuery, via: str | None) -> str:
    """Which index a query walks: `via` when it still applies (a later page keeps its first page's
    index), else the smallest that applies; `id` for a prefix, `all` without filters."""
    if query.id_prefix:
        return "id"
    indexed = query.indexed()
    if via in indexed:
        return via
    return _smallest(redis, query) if indexed else "all"


def walk(
    redis: Redis, query: EventQuery, via: str, before: float | None, *, first: int = CHUNK
) -> Iterator[list[tuple[str, float]]]:
    """Candidate (id, score) pairs from index `via`, newest first, in chunks (the first of `first`:
    a page without filters needs no more); at most MAX_WALK."""
    if via in ("id", "pipeline"):
        if via == "id":
            prefix = query.id_prefix.encode()
            ids = [_text(i) for i in redis.zrangebylex(IDS, b"[" + prefix, b"(" + prefix + b"\xff", 0, MAX_WALK)]
        else:
            ids = _in_pipeline(redis, query.pipeline)
        with redis.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.zscore(EVENTS_INDEX, event_id)
            scores = pipe.execute()
        found = [(i, float(s)) for i, s in zip(ids, scores, strict=True) if s is not None]
        found = sorted((x for x in found if before is None or x[1] < before), key=lambda x: -x[1])
        yield from chunks(found)
        return
    key = EVENTS_INDEX if via == "all" else index_key(via, query.indexed()[via])
    top = "+inf" if before is None else f"({before!r}"
    offset, size = 0, min(first, CHUNK)
    while offset < MAX_WALK:
        size = min(size, MAX_WALK - offset)
        page: list[tuple[bytes, float]]
        page = redis.zrevrangebyscore(key, top, "-inf", offset, size, withscores=True)  # type: ignore[assignment]
        yield [(_text(i), float(s)) for i, s in page]
        if len(page) < size:
            return
        offset, size = offset + size, CHUNK


def in_every_index(
    redis: Redis, query: EventQuery, via: str, chunk: list[tuple[str, float]]
) -> list[tuple[str, float]]:
    """The candidates of `chunk` that every other applicable index also holds (one ZMSCORE each, in
    one round trip), so records are read only for likely matches."""
    others = {f: index_key(f, v) for f, v in query.indexed().items() if f != via}
    if not others or not chunk:
        return chunk
    ids = [event_id for event_id, _ in chunk]
    number = _number(query.pipeline)
    with redis.pipeline(transaction=False) as pipe:
        for key in others.values():
            pipe.zmscore(key, ids)  # for the pipeline, its key before cie:idx:pipelines existed
        if "pipeline" in others:
            pipe.zmscore(PIPELINES, ids)
        scores = pipe.execute()
    if "pipeline" in others:  # in either index: the old key, or the one of all scored by that number
        by_number = scores.pop()
        at = list(others).index("pipeline")
        scores[at] = [
            old if old is not None else (found if found == number else None)
            for old, found in zip(scores[at], by_number, strict=True)
        ]
    return [pair for i, pair in enumerate(chunk) if all(found[i] is not None for found in scores)]


def _smallest(redis: Redis, query: EventQuery) -> str:
    """The applicable index with the fewest members (for the pipeline, the ids with that number)."""
    fields = list(query.indexed())
    with redis.pipeline(transaction=False) as pipe:
        for field in fields:
            if field != "pipeline":
                pipe.zcard(index_key(field, query.indexed()[field]))
            elif (number := _number(query.pipeline)) is not None:
                pipe.zcount(PIPELINES, number, number)
            else:
                pipe.echo("0")  # no event has it: the walk finds nothing at once
        sizes = pipe.execute()
    return min(zip((int(n) for n in sizes), fields, strict=True))[1]


def _in_pipeline(redis: Redis, pipeline: str) -> list[str]:
    """The ids of the events of pipeline number `pipeline` (any project), at most MAX_WALK; with those
    a key of their own held before cie:idx:pipelines existed (gone within a TTL of the upgrade)."""
    number = _number(pipeline)
    if number is None:
        return []
    with redis.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(PIPELINES, number, number, 0, MAX_WALK)
        pipe.zrange(index_key("pipeline", str(number)), 0, MAX_WALK - 1)
        current, legacy = pipe.execute()
    return list(dict.fromkeys(_text(i) for i in [*current, *legacy]))[:MAX_WALK]


def _number(value: Any) -> int | None:
    """A pipeline number as the index scores it; None for anything else (which no event has)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 0 <= number < 2**53 else None


def chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
