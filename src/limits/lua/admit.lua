--[[
  admit.lua: check every bucket of one request and, only if all of them have room, take the
  request's cost from each. All or nothing, in one atomic step.

  Buckets are continuously refilling token buckets (equivalent to GCRA). A bucket with limit L
  per window W (ms) stores its level in "unit-milliseconds": level = units * W, capacity L * W.
  Refill is then an integer: L per elapsed millisecond. Every value stays an exact integer well
  below 2^53 (150M TPM * 60,000 ms = 9e12).

  KEYS[i]   bucket hash (fields l = level, t = last update in ms); all KEYS share one {hash tag}
  ARGV      for each bucket i, three values: limit, window_ms, cost (units)
  Time comes from Redis (TIME), never from the gateway's clock.

  Returns { allowed (1/0), refusing bucket (1-based, 0 if allowed), wait_ms, now_ms,
            level_1 … level_n (after taking the cost, or as found when refused) }
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local n = #KEYS
local levels = {}
local refusing = 0
local wait = 0

for i = 1, n do
  local base = (i - 1) * 3
  local limit = tonumber(ARGV[base + 1])
  local window = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local capacity = limit * window
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = capacity
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(capacity, tonumber(state[1]) + elapsed * limit)
  end
  levels[i] = level
  local need = cost * window
  if need > level then
    local ms = math.ceil((need - level) / limit)
    if refusing == 0 or ms > wait then
      refusing = i
      wait = ms
    end
  end
end

local result = { 0, refusing, wait, now }
if refusing == 0 then
  result[1] = 1
  for i = 1, n do
    local base = (i - 1) * 3
    local limit = tonumber(ARGV[base + 1])
    local window = tonumber(ARGV[base + 2])
    local level = levels[i] - tonumber(ARGV[base + 3]) * window
    levels[i] = level
    redis.call('HSET', KEYS[i], 'l', level, 't', now)
    -- The key is redundant once the bucket is full again: let Redis drop it then.
    redis.call('PEXPIRE', KEYS[i], math.ceil((limit * window - level) / limit) + 1000)
  end
end
for i = 1, n do
  result[4 + i] = levels[i]
end
return result
