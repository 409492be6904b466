--[[
  limits.lua: the limiter's one script. It settles earlier reservations and admits new requests
  against continuously refilling token buckets, in one atomic step. The gateway batches the calls
  of one event-loop turn that share a hash tag (one key and model) into one call of this script,
  so a burst costs one round trip and one read and write of each bucket, not one per request.

  Buckets are token buckets (equivalent to GCRA). A bucket with limit L per window W (ms) stores
  its level in "unit-milliseconds": level = units * W, capacity L * W. Refill is then an integer:
  L per elapsed millisecond. Every value stays an exact integer well below 2^53
  (150M TPM * 60,000 ms = 9e12). Time comes from Redis (TIME), never from a gateway's clock.

  KEYS[k]    bucket hash k (fields l = level, t = last update in ms); all KEYS share one {hash tag}
  ARGV[1]    K, the number of buckets
  then, for each bucket k: limit, window_ms, settle delta (units; + returns, - takes more)
  then R, the number of requests to admit, in arrival order; for each request:
             m, then m pairs (bucket index k, cost in units)

  Settlement first: level = min(capacity, level + delta * window); the level may go below zero
  (the bucket is in debt and later requests wait until it has refilled). Then each request in
  turn: if every one of its buckets has room for its cost, the cost is taken from all of them
  (all or nothing); otherwise it is refused, and the wait is the longest of its buckets' waits.

  Returns { now_ms, level_1 … level_K after settlement,
            then per request: allowed (1/0), refusing (its own 1-based bucket position, 0),
            wait_ms, then m levels (after taking its cost, or as found when refused) }
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local K = tonumber(ARGV[1])
local limits, windows, levels, dirty = {}, {}, {}, {}
local result = { now }

for k = 1, K do
  local base = 2 + (k - 1) * 3
  local limit = tonumber(ARGV[base])
  local window = tonumber(ARGV[base + 1])
  local delta = tonumber(ARGV[base + 2])
  local capacity = limit * window
  local state = redis.call('HMGET', KEYS[k], 'l', 't')
  local level = capacity
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(capacity, tonumber(state[1]) + elapsed * limit)
  end
  if delta ~= 0 then
    level = math.min(capacity, level + delta * window)
    dirty[k] = true
  end
  limits[k], windows[k], levels[k] = limit, window, level
  result[1 + k] = level
end

local at = 2 + K * 3
local R = tonumber(ARGV[at])
at = at + 1
for _ = 1, R do
  local m = tonumber(ARGV[at])
  local first = at + 1
  at = first + m * 2
  local refusing, wait = 0, 0
  for j = 1, m do
    local k = tonumber(ARGV[first + (j - 1) * 2])
    local need = tonumber(ARGV[first + (j - 1) * 2 + 1]) * windows[k]
    if need > levels[k] then
      local ms = math.ceil((need - levels[k]) / limits[k])
      if refusing == 0 or ms > wait then
        refusing, wait = j, ms
      end
    end
  end
  if refusing == 0 then
    for j = 1, m do
      local k = tonumber(ARGV[first + (j - 1) * 2])
      levels[k] = levels[k] - tonumber(ARGV[first + (j - 1) * 2 + 1]) * windows[k]
      dirty[k] = true
    end
  end
  result[#result + 1] = refusing == 0 and 1 or 0
  result[#result + 1] = refusing
  result[#result + 1] = wait
  for j = 1, m do
    result[#result + 1] = levels[tonumber(ARGV[first + (j - 1) * 2])]
  end
end

for k = 1, K do
  if dirty[k] then
    local level = levels[k]
    redis.call('HSET', KEYS[k], 'l', level, 't', now)
    -- The key is redundant once the bucket is full again: let Redis drop it then.
    redis.call('PEXPIRE', KEYS[k], math.ceil((limits[k] * windows[k] - level) / limits[k]) + 1000)
  end
end
return result
