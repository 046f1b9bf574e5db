"""The transition state of every (project, ref, workflow), as the branch grid and the cctray feed read it.

workers/transition.py writes each state hash (`cie:transition:<project>:<ref>:<workflow>`) and
adds its key to the index `cie:transitions` (zset, scored by the time of the write); this module
reads them through that index, never by scanning the keyspace, and trims the index of states past
their TTL (the worker's maintenance). A state's hash holds: status, pipeline_number, happened_at,
kind, previous_status, previous_pipeline_number, since_number, since_at, failed_count (while
failing), last_success_number, web_url.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis import Redis

from workers.store import text
from workers.transition import KEY_PREFIX, STATES_INDEX, is_failure

MAX_STATES = 5000  # refs a page or feed shows at most, most recently written first


@dataclass(frozen=True)
class RefState:
    """The last terminal status of one (project, ref, workflow) and its failing streak."""

    project: str
    ref: str
    workflow: str
    status: str
    pipeline_number: int | None
    happened_at: str | None
    kind: str | None
    failing_since_pipeline_number: int | None
    failing_since: str | None
    failed_pipelines: int | None
    last_success_pipeline_number: int | None
    web_url: str | None

    def to_dict(self) -> dict[str, Any]:
        # its fields are scalars: a shallow copy (dataclasses.asdict deep-copies each, 3x slower, and
        # was half of what a page of 300 states cost)
        return dict(vars(self))


def triple_of(key: str) -> tuple[str, str, str] | None:
    """(project, ref, workflow) of a state key; None for a key of another shape."""
    parts = key.removeprefix(KEY_PREFIX).split(":")
    if not key.startswith(KEY_PREFIX) or len(parts) != 3:
        return None
    project, ref, workflow = (unquote(p) for p in parts)
    return project, ref, workflow


def read_states(
    redis: Redis, *, project: str | None = None, ref: str | None = None, limit: int = MAX_STATES
) -> list[RefState]:
    """The stored states, sorted by project, ref and workflow; only `project`'s and `ref`'s when given."""
    keys = [text(k) for k in redis.zrevrange(STATES_INDEX, 0, limit - 1)]
    wanted = [
        (key, triple)
        for key in keys
        if (triple := triple_of(key)) is not None
        and (project is None or triple[0] == project)
        and (ref is None or triple[1] == ref)
    ]
    with redis.pipeline(transaction=False) as pipe:
        for key, _ in wanted:
            pipe.hgetall(key)
        hashes = pipe.execute()
    states = [_state(triple, raw) for (_, triple), raw in zip(wanted, hashes, strict=True) if raw]
    return sorted(states, key=lambda s: (s.project, s.ref, s.workflow))


def trim_states(redis: Redis, *, ttl: int, now: float) -> int:
    """Drop index entries of states not written for `ttl` seconds before `now` (their hashes have expired)."""
    return int(redis.zremrangebyscore(STATES_INDEX, 0, now - ttl))


def _state(triple: tuple[str, str, str], raw: dict[Any, Any]) -> RefState:
    fields = {text(k): text(v) for k, v in raw.items()}

    def number(name: str) -> int | None:
        value = fields.get(name)
        return int(value) if value and value.lstrip("-").isdigit() else None

    failing = is_failure(fields.get("status", ""))  # a `fixed` state keeps the streak it ended: not shown
    return RefState(
        project=triple[0],
        ref=triple[1],
        workflow=triple[2],
        status=fields.get("status", "unknown"),
        pipeline_number=number("pipeline_number"),
        happened_at=fields.get("happened_at") or None,
        kind=fields.get("kind"),
        failing_since_pipeline_number=number("since_number") if failing else None,
        failing_since=(fields.get("since_at") or None) if failing else None,
        failed_pipelines=number("failed_count") if failing else None,
        last_success_pipeline_number=number("last_success_number"),
        web_url=fields.get("web_url") or None,
    )
