"""The two Redis keys that make a delivery's effect happen once.

    cie:delivered:<delivery_id>   string  set once (SET NX) when the destination took the message
    cie:lock:<delivery_id>        string  held (SET NX PX, a random token) while one worker sends

The lock expires on its own, so a worker killed mid-send holds it only until its time is up.
Released after a failure only by its holder (compare and delete: a script, three commands);
after a success by a plain DEL queued behind the delivered mark (`release_delivered`).
"""

from __future__ import annotations

import json
import time
import uuid

from redis import Redis
from redis.client import Pipeline

DELIVERED_PREFIX = "cie:delivered:"
LOCK_PREFIX = "cie:lock:"

# Delete the lock only if it is still ours: it may have expired and been taken by another worker.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class DeliveryLock:
    def __init__(self, redis: Redis, delivery_id: str, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self.delivered_key = DELIVERED_PREFIX + delivery_id
        self.lock_key = LOCK_PREFIX + delivery_id

    def delivered(self) -> bool:
        """True once a success is recorded for this delivery."""
        return bool(self.redis.exists(self.delivered_key))

    def mark_delivered(self, job_id: str, *, force: bool = False, pipe: Pipeline | None = None) -> bool:
        """Record the success; False when one was recorded already (a forced replay overwrites it).
        On `pipe`, queued (its reply says it)."""
        value = json.dumps({"at": time.time(), "job_id": job_id})
        return bool((pipe or self.redis).set(self.delivered_key, value, ex=self.ttl, nx=not force))

    def acquire(self, hold_ms: int) -> str | None:
        """Take the lock for `hold_ms`; returns the token to release it with, or None when held."""
        token = uuid.uuid4().hex
        return token if self.redis.set(self.lock_key, token, px=hold_ms, nx=True) else None

    def ask(self, pipe: Pipeline, hold_ms: int) -> str:
        """Queue on `pipe` the lock's SET NX and, after it, the delivered check (the order `acquire`
        then `delivered` keeps): replies `True`/`None` and 1/0. The token it would be held with."""
        token = uuid.uuid4().hex
        pipe.set(self.lock_key, token, px=hold_ms, nx=True)
        pipe.exists(self.delivered_key)
        return token

    def release(self, token: str, *, pipe: Pipeline | None = None) -> None:
        """Free the lock if `token` still holds it; on `pipe`, queued after what came before on it."""
        (pipe or self.redis).eval(_RELEASE_LUA, 1, self.lock_key, token)

    def release_delivered(self, pipe: Pipeline) -> None:
        """Queue on `pipe`, after `mark_delivered` on it, a plain DEL of the lock: one command, not the
        compare-and-delete's three. Whoever holds the lock then, this attempt or one that took it after
        this one's expired, checks the delivered key after taking the lock and never sends again, so
        freeing another holder's lock lets in at most an attempt that finds the delivery done. Not
        for a forced replay (it sends whatever the delivered key says): it releases by `release`."""
        pipe.delete(self.lock_key)

    def remaining_seconds(self) -> float:
        """How long the current holder may still hold the lock."""
        return max(0.0, int(self.redis.pttl(self.lock_key)) / 1000)
