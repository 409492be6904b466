--[[
  settle.lua: correct earlier reservations to what was really used. A positive delta returns
  units to the bucket (never above its capacity); a negative delta takes more (the level may go
  below zero: the bucket is in debt and later requests wait until it has refilled). Counters
  (usage hash fields, see admit.lua) are increased by their units, which may be negative.

  KEYS      the buckets (fields l, t), then the counters' hashes; all KEYS share one {hash tag}
  ARGV      for each bucket i: limit, window_ms, delta (units; + returns, - takes);
            then for each counter j: field, units, ttl_ms (0: none).
            Counters have as many values as buckets, so the split is given by ARGV[#ARGV]:
            the number of counters (0 when there are none; a call with only buckets may omit it).
  Returns the levels after settlement, then the counters' values.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local counters = 0
if #ARGV > 3 * #KEYS then
  counters = tonumber(ARGV[#ARGV])
end
local n = #KEYS - counters
local result = {}
for i = 1, n do
  local base = (i - 1) * 3
  local limit = tonumber(ARGV[base + 1])
  local window = tonumber(ARGV[base + 2])
  local delta = tonumber(ARGV[base + 3])
  local capacity = limit * window
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = capacity
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(capacity, tonumber(state[1]) + elapsed * limit)
  end
  level = math.min(capacity, level + delta * window)
  redis.call('HSET', KEYS[i], 'l', level, 't', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil((capacity - level) / limit) + 1000)
  result[i] = level
end
for j = 1, counters do
  local base = n * 3 + (j - 1) * 3
  result[n + j] = redis.call('HINCRBY', KEYS[n + j], ARGV[base + 1], ARGV[base + 2])
  local ttl = tonumber(ARGV[base + 3])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[n + j], ttl)
  end
end
return result
