--[[
  limits.lua: the limiter's one script. It settles earlier reservations and admits new requests
  against continuously refilling token buckets and capped usage counters, in one atomic step. The
  gateway batches the calls of one event-loop turn that share a hash tag (one key) into one call
  of this script, so a burst costs one round trip and one read and write of each bucket, not one
  per request.

  Buckets are token buckets (equivalent to GCRA). A bucket with limit L per window W (ms) stores
  its level in "unit-milliseconds": level = units * W, capacity L * W. Refill is then an integer:
  L per elapsed millisecond. Every value stays an exact integer well below 2^53
  (150M TPM * 60,000 ms = 9e12). Time comes from Redis (TIME), never from a gateway's clock.

  Counters are fields of usage hashes (a key's spend and tokens per UTC day, month, ever): a capped
  counter admits when value + units <= cap; every counter of an admitted request is then increased.

  KEYS       the bucket hashes (fields l = level, t = last update in ms), then the counter hashes;
             all KEYS share one {hash tag}
  ARGV[1]    K, the number of buckets
  then, for each bucket k: limit, window_ms, settle delta (units; + returns, - takes more)
  then H, the number of counter hashes (KEYS[K + 1 .. K + H])
  then S, the number of counters; for each counter s: hash (1-based among the counter hashes),
             field, ttl_ms (0: none), settle delta (units, may be negative)
  then R, the number of requests to admit, in arrival order; for each request:
             m, then m pairs (bucket index k, cost in units),
             c, then c triples (counter index s, cap (-1: none), units)

  Settlement first: level = min(capacity, level + delta * window); the level may go below zero
  (the bucket is in debt and later requests wait until it has refilled); counters add their
  deltas. Then each request in turn, all or nothing: a counter over its cap refuses it (waiting
  cannot help: wait 0), else a bucket without room refuses it (the longest wait), else its costs
  are taken from its buckets and its units added to its counters.

  Returns { now_ms, level_1 … level_K and value_1 … value_S after settlement,
            then per request: allowed (1/0), refusing (its own 1-based position over its buckets
            then its counters, 0), wait_ms, then m levels and c values (after taking its cost, or
            as found when refused) }
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
  result[#result + 1] = level
end

local at = 2 + K * 3
local H = tonumber(ARGV[at])
local S = tonumber(ARGV[at + 1])
at = at + 2
local hashes, fields, ttls, values, added = {}, {}, {}, {}, {}
for s = 1, S do
  hashes[s] = KEYS[K + tonumber(ARGV[at])]
  fields[s] = ARGV[at + 1]
  ttls[s] = tonumber(ARGV[at + 2])
  added[s] = tonumber(ARGV[at + 3])
  values[s] = tonumber(redis.call('HGET', hashes[s], fields[s]) or '0') + added[s]
  result[#result + 1] = values[s]
  at = at + 4
end

local R = tonumber(ARGV[at])
at = at + 1
for _ = 1, R do
  local m = tonumber(ARGV[at])
  local first = at + 1
  at = first + m * 2
  local c = tonumber(ARGV[at])
  local firstCounter = at + 1
  at = firstCounter + c * 3
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
  for j = 1, c do
    local base = firstCounter + (j - 1) * 3
    local s = tonumber(ARGV[base])
    local cap = tonumber(ARGV[base + 1])
    if cap >= 0 and values[s] + tonumber(ARGV[base + 2]) > cap and (refusing == 0 or refusing <= m) then
      refusing, wait = m + j, 0
    end
  end
  if refusing == 0 then
    for j = 1, m do
      local k = tonumber(ARGV[first + (j - 1) * 2])
      levels[k] = levels[k] - tonumber(ARGV[first + (j - 1) * 2 + 1]) * windows[k]
      dirty[k] = true
    end
    for j = 1, c do
      local base = firstCounter + (j - 1) * 3
      local s = tonumber(ARGV[base])
      local units = tonumber(ARGV[base + 2])
      values[s] = values[s] + units
      added[s] = added[s] + units
    end
  end
  result[#result + 1] = refusing == 0 and 1 or 0
  result[#result + 1] = refusing
  result[#result + 1] = wait
  for j = 1, m do
    result[#result + 1] = levels[tonumber(ARGV[first + (j - 1) * 2])]
  end
  for j = 1, c do
    result[#result + 1] = values[tonumber(ARGV[firstCounter + (j - 1) * 3])]
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
for s = 1, S do
  if added[s] ~= 0 then
    -- An integer increment, written in full: counters (nano-dollars) can outgrow %.14g.
    redis.call('HINCRBY', hashes[s], fields[s], string.format('%d', added[s]))
  end
  if ttls[s] > 0 then
    redis.call('PEXPIRE', hashes[s], ttls[s])
  end
end
return result
