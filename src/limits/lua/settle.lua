--[[
  settle.lua: correct earlier reservations to what was really used. A positive delta returns
  units to the bucket (never above its capacity); a negative delta takes more (the level may go
  below zero: the bucket is in debt and later requests wait until it has refilled).

  KEYS[i]   bucket hash (fields l, t), as in admit.lua; all KEYS share one {hash tag}
  ARGV      for each bucket i: limit, window_ms, delta (units; + returns, - takes)
  Returns the levels after settlement.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local result = {}
for i = 1, #KEYS do
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
return result
