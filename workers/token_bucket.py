"""The token bucket shared by every web process, as a Lua function other scripts call.

It runs inside Redis, on Redis's clock (TIME), so web processes on different hosts agree and
a check costs no extra round trip: the admission script (service/intake.py) calls it for each
delivery before deduplicating and queueing it.
"""

from __future__ import annotations

# take_tokens(key, rate, burst, wanted) -> tokens granted (0..wanted), seconds to wait for the
# next one; take_token(key, rate, burst) takes one.
TOKEN_BUCKET_LUA = """
local function take_tokens(key, rate, burst, wanted)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  local granted = math.min(wanted, math.floor(tokens))
  local wait = 0
  tokens = tokens - granted
  if granted == 0 then
    wait = (1 - tokens) / rate
  end
  redis.call('HSET', key, 'tokens', tokens, 'ts', now)
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 1)
  return granted, wait
end

local function take_token(key, rate, burst)
  return take_tokens(key, rate, burst, 1)
end
"""
RATE_LIMIT_PREFIX = "cie:ratelimit:"
