"""A token bucket in Redis, shared by every web process: one atomic Lua call per request."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS[1] bucket; ARGV rate (tokens/s), burst (capacity). Returns {allowed, wait_seconds}.
# The server clock (TIME) is used so that web processes on different hosts agree.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float


class RateLimiter:
    """Allows `burst` requests at once per key, refilled at `per_second`."""

    def __init__(self, redis: Redis, *, burst: int, per_second: float, prefix: str = "cie:ratelimit:") -> None:
        self._script = redis.register_script(TOKEN_BUCKET_LUA)
        self._burst = burst
        self._rate = per_second
        self._prefix = prefix

    async def take(self, key: str) -> Decision:
        allowed, wait = await self._script(keys=[self._prefix + key], args=[self._rate, self._burst])
        return Decision(allowed=bool(int(allowed)), retry_after=float(wait))
