"""Deliveries that ran out of retries or were refused, kept for an operator to read and replay.

    cie:dead:<delivery_id>   hash  delivery_id, event_id, handler, reason, last_status,
                                   body_excerpt (at most 200 characters), attempts,
                                   first_attempt_at, last_attempt_at, dead_at
    cie:dead                 zset  delivery ids scored by dead_at (epoch seconds), for listing

Reasons: `retry_budget_exhausted`, `rejected` (a 4xx other than 408 and 429: fix the
configuration, then replay), `unknown_handler`, `event_expired`, and `undecodable`: an
enrichment job whose data or payload the worker cannot read (its delivery id is
`job:<RQ job id>`, its handler `-`); it cannot be replayed, and RQ's failed registry keeps the
job with its traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis

from config.clock import SYSTEM_CLOCK, Clock
from workers.store import members_starting, text

DEAD_PREFIX = "cie:dead:"
DEAD_INDEX = "cie:dead"
EXCERPT_CHARS = 200
UNDECODABLE = "undecodable"


@dataclass(frozen=True)
class DeadLetter:
    delivery_id: str
    event_id: str
    handler: str
    reason: str
    last_status: int | None = None
    body_excerpt: str = ""
    attempts: int = 0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    dead_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        # scalars only: a shallow copy, as RefState.to_dict (asdict deep-copies each field)
        return dict(vars(self))

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> DeadLetter:
        fields = {text(k): text(v) for k, v in raw.items()}

        def number(name: str) -> float | None:
            return float(fields[name]) if fields.get(name) else None

        return cls(
            delivery_id=fields["delivery_id"],
            event_id=fields["event_id"],
            handler=fields["handler"],
            reason=fields["reason"],
            last_status=int(fields["last_status"]) if fields.get("last_status") else None,
            body_excerpt=fields.get("body_excerpt", ""),
            attempts=int(fields.get("attempts") or 0),
            first_attempt_at=number("first_attempt_at"),
            last_attempt_at=number("last_attempt_at"),
            dead_at=number("dead_at") or 0.0,
        )


class DeadLetters:
    """Reads and writes dead letters; they expire with the enriched event they point to."""

    def __init__(self, redis: Redis, *, ttl: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self.redis = redis
        self.ttl = ttl
        self.clock = clock

    def put(self, letter: DeadLetter) -> None:
        """Keep `letter`, replacing an earlier one for the same delivery."""
        fields: dict[Any, Any] = {k: "" if v is None else v for k, v in letter.to_dict().items()}
        fields["body_excerpt"] = excerpt(letter.body_excerpt)
        key = DEAD_PREFIX + letter.delivery_id
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl)
            pipe.zadd(DEAD_INDEX, {letter.delivery_id: letter.dead_at})
            pipe.zremrangebyscore(DEAD_INDEX, 0, self.clock.now() - self.ttl)
            pipe.execute()

    def get(self, delivery_id: str) -> DeadLetter | None:
        raw = self.redis.hgetall(DEAD_PREFIX + delivery_id)
        return DeadLetter.from_hash(raw) if raw else None

    def remove(self, delivery_id: str) -> bool:
        """Forget a dead letter; True when there was one."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(DEAD_PREFIX + delivery_id)
            pipe.zrem(DEAD_INDEX, delivery_id)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def ids_starting(self, prefix: str) -> list[str]:
        """Delivery ids of the kept dead letters that start with `prefix`, newest first (for
        operators typing a short id)."""
        ids = members_starting(self.redis, DEAD_INDEX, prefix)
        with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.exists(DEAD_PREFIX + delivery_id)
            kept = pipe.execute()
        return [i for i, exists in zip(ids, kept, strict=True) if exists]

    def list(self, *, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""
        ids = self.redis.zrevrange(DEAD_INDEX, 0, limit - 1)
        with self.redis.pipeline(transaction=False) as pipe:  # one round trip, not one per letter
            for delivery_id in ids:
                pipe.hgetall(DEAD_PREFIX + text(delivery_id))
            raws = pipe.execute()
        return [DeadLetter.from_hash(raw) for raw in raws if raw]


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of a response body, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
