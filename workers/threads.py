"""Chat threads of breakages: where a handler posted the root message of one breakage, and what
it has added to it since. Kept beside the transition state, keyed like it, with its TTL.

    cie:thread:<handler>:<project>:<ref>:<workflow>   hash; TTL TRANSITION_TTL_SECONDS, renewed on each write
        since            the pipeline number that broke the ref (the transition's
                         failing_since_pipeline_number): which breakage the thread is. A new
                         breakage replaces the whole hash.
        channel, ts      the root message (Slack's channel id and ts; Discord's message id in ts)
        root             JSON: the root as first posted ({text, blocks}, or Discord's body);
                         every update of the root is built from it
        event            the event whose delivery posted the root
        latest           the newest pipeline number the root shows; `fixed` is "1" once it shows the fix
        reply:<event>    the ts of the reply posted for that event
        dm               the ts of the direct message to whoever broke it
    cie:thread-lock:<handler>:…   "<delivery id>|<random>", held (SET NX PX) while one delivery
                                  changes the thread, renewed before each call; a run of the same
                                  delivery takes it over (the delivery's own lock says the earlier
                                  run is dead), so a killed worker's thread is not held until it lapses

Each write is one MULTI, made the moment the chat service answered, before anything else is
sent (waiting out a Redis away then: workers/redis_outage.py): a retried delivery finds what was
posted and does not post it again. What stays open is
a worker killed between the chat service's answer and this write (milliseconds), as for any
post (docs/development.md, Reliability).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from redis import Redis

from workers.jobs import WORKFLOW_COMPLETED
from workers.redis_outage import ride_out
from workers.transition import is_failure, ref_of

PREFIX = "cie:thread:"
LOCK_PREFIX = "cie:thread-lock:"

# KEYS: the lock. ARGV: the delivery id, a random token, hold ms. Free, or held by an earlier run
# of the same delivery: take it.
_ACQUIRE_LUA = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"""
# KEYS: the lock. ARGV: its value, hold ms (0: release). Only while it is still ours.
_KEEP_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) == 0 then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


@dataclass(frozen=True)
class Thread:
    """One breakage's thread: its root and what has been posted to it."""

    since: int
    channel: str
    ts: str
    root: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = ""
    latest: int = 0
    fixed: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)  # reply:<event id>, dm

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "channel": self.channel,
            "ts": self.ts,
            "event": self.event_id,
            "latest": self.latest,
            "fixed": self.fixed,
            **self.notes,
        }

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> Thread | None:
        """The thread a Redis hash holds; None when it holds no root."""
        if not data.get("ts") or not data.get("since"):
            return None
        known = ("since", "channel", "ts", "root", "event", "latest", "fixed")
        return cls(
            since=int(data["since"]),
            channel=data.get("channel", ""),
            ts=data["ts"],
            root=json.loads(data.get("root") or "{}"),
            event_id=data.get("event", ""),
            latest=int(data.get("latest") or data["since"]),
            fixed=data.get("fixed") == "1",
            notes={k: v for k, v in data.items() if k not in known},
        )


def breakage_of(event: Mapping[str, Any]) -> int | None:
    """The pipeline number that broke the event's ref, when the event is part of a breakage
    (a failing workflow, or the fix); None otherwise."""
    transition = event.get("transition")
    if event.get("event_type") != WORKFLOW_COMPLETED or not isinstance(transition, Mapping):
        return None
    kind, since = transition.get("kind"), transition.get("failing_since_pipeline_number")
    failing = kind in ("broken", "still_failing") or (kind == "first_seen" and is_failure(str(event.get("status"))))
    return since if isinstance(since, int) and (failing or kind == "fixed") else None


def thread_key(handler: str, event: Mapping[str, Any]) -> str | None:
    """The key of the thread an event belongs to for a handler; None when it has no ref or workflow."""
    triple = ref_of(event)
    if triple is None:
        return None
    return PREFIX + ":".join(quote(part, safe="") for part in (handler, *triple))


class ThreadStore:
    def __init__(self, redis: Redis, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def get(self, key: str) -> Thread | None:
        raw = self.redis.hgetall(key)
        return Thread.from_hash({_s(k): _s(v) for k, v in raw.items()})

    def start(self, key: str, thread: Thread) -> None:
        """Make `thread` the key's, replacing any earlier breakage's, in one MULTI."""
        fields: dict[Any, Any] = {
            "since": thread.since,
            "channel": thread.channel,
            "ts": thread.ts,
            "root": json.dumps(dict(thread.root), ensure_ascii=False),
            "event": thread.event_id,
            "latest": thread.latest or thread.since,
            "fixed": "1" if thread.fixed else "0",
            **thread.notes,
        }

        def write() -> None:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=fields)
                pipe.expire(key, self.ttl)
                pipe.execute()

        ride_out(write, what="a thread's root message")

    def note(self, key: str, **fields: str | int | float) -> None:
        """Add to the thread (a reply's ts, the pipeline the root now shows) and renew its TTL."""
        mapping: dict[Any, Any] = dict(fields)

        def write() -> None:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, self.ttl)
                pipe.execute()

        ride_out(write, what="a thread's message")

    def lock(self, key: str, delivery_id: str) -> ThreadLock:
        """The lock `delivery_id` holds while it changes this thread."""
        return ThreadLock(self.redis, LOCK_PREFIX + key.removeprefix(PREFIX), delivery_id)


class ThreadLock:
    """One delivery at a time changes a thread; see the keys above."""

    def __init__(self, redis: Redis, key: str, delivery_id: str) -> None:
        self.redis, self.key = redis, key
        self.delivery_id = delivery_id
        self.value = f"{delivery_id}|{uuid.uuid4().hex}"

    def acquire(self, hold_ms: int) -> bool:
        token = self.value.rpartition("|")[2]
        return bool(self.redis.eval(_ACQUIRE_LUA, 1, self.key, self.delivery_id, token, hold_ms))

    def extend(self, hold_ms: int) -> bool:
        """Hold it `hold_ms` from now; False when it is no longer ours."""
        return bool(self.redis.eval(_KEEP_LUA, 1, self.key, self.value, hold_ms))

    def release(self) -> None:
        self.redis.eval(_KEEP_LUA, 1, self.key, self.value, 0)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
