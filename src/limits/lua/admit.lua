--[[
  admit.lua: check every bucket and every capped counter of one request and, only if all of them
  have room, take the request's cost from each. All or nothing, in one atomic step.

  Buckets are continuously refilling token buckets (equivalent to GCRA). A bucket with limit L
  per window W (ms) stores its level in "unit-milliseconds": level = units * W, capacity L * W.
  Refill is then an integer: L per elapsed millisecond. Every value stays an exact integer well
  below 2^53 (150M TPM * 60,000 ms = 9e12).

  Counters are fields of calendar-window usage hashes (a key's spend and tokens per UTC day, month,
  ever): a capped counter admits when value + units <= cap; every counter is then increased.

  KEYS      the buckets, then the counters' hashes; all KEYS share one {hash tag}
  ARGV      for each bucket i, three values: limit, window_ms, cost (units);
            then for each counter j, four values: field, cap (-1: none), units, ttl_ms (0: none).
            Counters have one value more than buckets, so their number is #ARGV - 3 * #KEYS.
  Time comes from Redis (TIME), never from the gateway's clock.

  Returns { allowed (1/0), refusing (1-based over buckets then counters, 0 if allowed), wait_ms,
            now_ms, level_1 … level_n, value_1 … value_m (after taking the cost, or as found) }
  A counter refuses before any bucket: waiting cannot help it (wait_ms is then 0).
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local counters = #ARGV - 3 * #KEYS
local n = #KEYS - counters
local levels = {}
local values = {}
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

for j = 1, counters do
  local base = n * 3 + (j - 1) * 4
  local value = tonumber(redis.call('HGET', KEYS[n + j], ARGV[base + 1]) or '0')
  values[j] = value
  local cap = tonumber(ARGV[base + 2])
  if cap >= 0 and value + tonumber(ARGV[base + 3]) > cap and (refusing == 0 or refusing <= n) then
    refusing = n + j
    wait = 0
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
  for j = 1, counters do
    local base = n * 3 + (j - 1) * 4
    values[j] = redis.call('HINCRBY', KEYS[n + j], ARGV[base + 1], ARGV[base + 3])
    local ttl = tonumber(ARGV[base + 4])
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[n + j], ttl)
    end
  end
end
for i = 1, n do
  result[4 + i] = levels[i]
end
for j = 1, counters do
  result[4 + n + j] = values[j]
end
return result
