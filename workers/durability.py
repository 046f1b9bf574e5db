"""Whether the Redis we were given keeps what the receiver promised to keep.

A 202 means the event is in Redis. A Redis that evicts keys under memory pressure
(`maxmemory-policy` other than `noeviction`) drops job records and dedupe keys without a word:
60 events all answered 202 and most were gone. So web and worker read the policy at start-up
and refuse to run on an evicting Redis unless REDIS_ALLOW_EVICTION says the risk is accepted;
the web's /readyz reads it again. Without AOF (`appendonly no`) a restart loses what was queued:
that is a warning, as is a managed Redis that refuses CONFIG GET (its provider's settings apply).

    read_durability(redis)          sync, one round trip (two CONFIG GETs in a pipeline)
    await read_durability_async(redis)
    durability.check(allow_eviction=...)   raises ConfigurationError, returns the warnings
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ResponseError

from config.errors import ConfigurationError

SAFE_POLICY = "noeviction"


@dataclass(frozen=True)
class Durability:
    """What the server said; None where it would not say (CONFIG GET refused)."""

    eviction_policy: str | None
    appendonly: bool | None

    @classmethod
    def from_replies(cls, policy: Any, appendonly: Any) -> Durability:
        policy_value = _value(policy, "maxmemory-policy")
        aof = _value(appendonly, "appendonly")
        return cls(policy_value, None if aof is None else aof == "yes")

    @property
    def evicts(self) -> bool:
        return self.eviction_policy is not None and self.eviction_policy != SAFE_POLICY

    def check(self, *, allow_eviction: bool) -> list[str]:
        """Raise ConfigurationError on an evicting Redis (unless allowed); the warnings otherwise."""
        warnings = []
        if self.evicts:
            if not allow_eviction:
                raise ConfigurationError(self.eviction_problem())
            warnings.append(self.eviction_problem() + " (accepted: REDIS_ALLOW_EVICTION is set)")
        if self.eviction_policy is None:
            warnings.append(
                "Redis refused CONFIG GET, so its eviction policy is unknown: make sure the provider's "
                "maxmemory-policy is noeviction, or accepted events may be evicted"
            )
        if self.appendonly is False:
            warnings.append(
                "Redis keeps no append-only file (appendonly no): a restart loses every queued event; "
                "set appendonly yes (appendfsync everysec) in production"
            )
        return warnings

    def eviction_problem(self) -> str:
        return (
            f"Redis evicts keys under memory pressure (maxmemory-policy {self.eviction_policy}): accepted events "
            "and dedupe keys would be lost; set maxmemory-policy noeviction on the server (CONFIG SET "
            "maxmemory-policy noeviction, and in redis.conf), or set REDIS_ALLOW_EVICTION=1 to accept the risk"
        )


def ensure_durable(redis: Redis, *, allow_eviction: bool, log: Any, warn: bool = True) -> None:
    """Start-up: stop on an evicting Redis (ConfigurationError), log a warning for each other risk
    unless `warn` is False (a process `circleci-events run` started: it said them once for all)."""
    for problem in read_durability(redis).check(allow_eviction=allow_eviction):
        if warn:
            log.warning("redis_not_durable", problem=problem)


def read_durability(redis: Redis) -> Durability:
    try:
        with redis.pipeline(transaction=False) as pipe:
            pipe.config_get("maxmemory-policy")
            pipe.config_get("appendonly")
            policy, appendonly = pipe.execute()
    except ResponseError:  # CONFIG is disabled or renamed (managed Redis)
        return Durability(None, None)
    return Durability.from_replies(policy, appendonly)


async def read_durability_async(redis: AsyncRedis) -> Durability:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.config_get("maxmemory-policy")
            pipe.config_get("appendonly")
            policy, appendonly = await pipe.execute()
    except ResponseError:
        return Durability(None, None)
    return Durability.from_replies(policy, appendonly)


def _value(reply: Any, name: str) -> str | None:
    """CONFIG GET's answer for `name` (bytes or str keys), or None when it was not given."""
    if not isinstance(reply, dict):
        return None
    for key, value in reply.items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key == name:
            return (value.decode() if isinstance(value, bytes) else str(value)).lower()
    return None
