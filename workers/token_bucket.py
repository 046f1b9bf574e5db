"""The token bucket shared by every web process, as a Lua function other scripts call.

It runs inside Redis, on Redis's clock (TIME), so web processes on different hosts agree and
a check costs no extra round trip: the admission script (service/intake.py) calls it for each
delivery before deduplicating and queueing it, and the CircleCI API budget
(workers/circleci/budget.py) for each batch of tokens.

    cie:bucket:<name>   string  "<tokens> <epoch seconds of the last take>"; it expires once the
                                bucket would be full again (burst / rate), plus a second

One string, not a hash: a take is TIME, GET and SET with PX (three commands, not the four a
hash's HMGET, HSET and EXPIRE cost), run for every webhook delivery and every API batch.
Its prefix is new (the hash lived under cie:ratelimit:): a process of the release before and
one of this release keep separate buckets while both run, for the few seconds a bucket lasts,
instead of failing on each other's type.
"""

from __future__ import annotations

from redis import Redis

# take_tokens(key, rate, burst, wanted) -> tokens granted (0..wanted), seconds to wait for the
# next one; take_token(key, rate, burst) takes one. A state that does not parse is a full bucket.
TOKEN_BUCKET_LUA = """
local function take_tokens(key, rate, burst, wanted)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local tokens, ts = burst, now
  local state = redis.call('GET', key)
  if state then
    local space = string.find(state, ' ', 1, true)
    if space then
      tokens = tonumber(string.sub(state, 1, space - 1)) or burst
      ts = tonumber(string.sub(state, space + 1)) or now
    end
  end
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  local granted = math.min(wanted, math.floor(tokens))
  local wait = 0
  tokens = tokens - granted
  if granted == 0 then
    wait = (1 - tokens) / rate
  end
  redis.call('SET', key, string.format('%.17g %.6f', tokens, now), 'PX', math.ceil(burst / rate * 1000) + 1000)
  return granted, wait
end

local function take_token(key, rate, burst)
  return take_tokens(key, rate, burst, 1)
end
"""
RATE_LIMIT_PREFIX = "cie:bucket:"


def tokens_left(redis: Redis, key: str) -> float | None:
    """The tokens the bucket at `key` held after its last take (not refilled since); None when it
    is full (no key)."""
    state = redis.get(key)
    return float(state.split()[0]) if state else None
