"""The token bucket shared by every web process, as a Lua function other scripts call.

It runs inside Redis, on Redis's clock (TIME), so web processes on different hosts agree and
a check costs no extra round trip: the admission script (service/intake.py) calls it for each
delivery before deduplicating and queueing it.
"""

from __future__ import annotations

# take_token(key, rate, burst) -> allowed (0|1), seconds to wait for the next token
TOKEN_BUCKET_LUA = """
local function take_token(key, rate, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local state = redis.call('HMGET', key, 'tokens', 'ts')
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
  redis.call('HSET', key, 'tokens', tokens, 'ts', now)
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 1)
  return allowed, wait
end
"""
RATE_LIMIT_PREFIX = "cie:ratelimit:"
