--[[
  limits.lua: the limiter's one script. It settles earlier reservations and admits new requests
  against continuously refilling token buckets and capped usage counters, in one atomic step. The
  gateway batches the calls that share a hash tag (one key) into one call of this script, so a
  burst costs one round trip and one read and write of each bucket, not one per request.

  Buckets are token buckets (equivalent to GCRA). A bucket with limit L per window W (ms) stores
  its level in "unit-milliseconds": level = units * W, capacity L * W. Refill is then an integer:
  L per elapsed millisecond. Every value stays an exact integer well below 2^53
  (150M TPM * 60,000 ms = 9e12). Time comes from Redis (TIME), never from a gateway's clock.

  Counters are fields of usage hashes (a key's spend and tokens per UTC day, month, ever): a capped
  counter admits when value + units <= cap; every counter of an admitted request is then increased.

  KEYS       the bucket hashes (fields l = level, t = last update in ms), then the counter hashes,
             then, for a call with a settlement id, the key that remembers the id; all KEYS share
             one {hash tag}
  ARGV[1]    the numbers below, as one MessagePack array: decoding it in C (cmsgpack) costs a
             fraction of what one argument per number costs (Redis's own conversion of each
             argument, then tonumber in Lua)
  ARGV[2..]  the counters' field names, in counter order

  The numbers:
    D, the position in KEYS of the settlement id's key (0: no id), then its ttl_ms (0 without one).
      A call with an id applies its settlement deltas only the first time the id is seen: a
      settlement written again after a failure whose outcome was unknown (a dropped connection,
      a timeout, the client's own resend) is then neither lost nor counted twice.
    K, the number of buckets
    then, for each bucket k: limit, window_ms, settle delta (units; + returns, - takes more)
    then S, the number of counters; for each counter s: hash (1-based among the counter hashes,
               which are KEYS[K + 1 ..]),
               ttl_ms (0: none), settle delta (units, may be negative)
    then R, the number of requests to admit, in arrival order; for each request:
               m, then m pairs (bucket index k, cost in units),
               c, then c triples (counter index s, cap (-1: none), units)

  Settlement first: level = min(capacity, level + delta * window); the level may go below zero
  (the bucket is in debt and later requests wait until it has refilled); counters add their
  deltas. Then each request in turn, all or nothing: a counter over its cap refuses it (waiting
  cannot help: wait 0), else a bucket without room refuses it (the longest wait), else its costs
  are taken from its buckets and its units added to its counters.

  Returns { now_ms, level_1 … level_K and value_1 … value_S after settlement, then, for each
            refused request only: its position (1-based), refusing (its own 1-based position over
            its buckets then its counters), wait_ms }.
  The caller replays the admitted requests' costs in order to know each request's levels and
  values: the same integer arithmetic, so the same figures, without a reply of their size.
]]
local tonumber, min, max, ceil = tonumber, math.min, math.max, math.ceil
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local a = cmsgpack.unpack(ARGV[1])
-- One SET for a call with a settlement id, none without: false when the id was seen before.
local settles = a[1] == 0 or redis.call('SET', KEYS[a[1]], '1', 'NX', 'PX', a[2])
local K = a[3]
local limits, windows, levels, dirty = {}, {}, {}, {}
local result = { now }

local at = 4
for k = 1, K do
  local limit, window, delta = a[at], a[at + 1], settles and a[at + 2] or 0
  at = at + 3
  local capacity = limit * window
  local state = redis.call('HMGET', KEYS[k], 'l', 't')
  local level = capacity
  if state[1] then
    level = min(capacity, tonumber(state[1]) + max(0, now - tonumber(state[2])) * limit)
  end
  if delta ~= 0 then
    level = min(capacity, level + delta * window)
    dirty[k] = true
  end
  limits[k], windows[k], levels[k] = limit, window, level
  result[k + 1] = level
end

local S = a[at]
at = at + 1
local hashes, fields, ttls, values, added = {}, {}, {}, {}, {}
for s = 1, S do
  hashes[s] = KEYS[K + a[at]]
  fields[s] = ARGV[1 + s]
  ttls[s] = a[at + 1]
  added[s] = settles and a[at + 2] or 0
  values[s] = tonumber(redis.call('HGET', hashes[s], fields[s]) or '0') + added[s]
  result[K + 1 + s] = values[s]
  at = at + 3
end

local n = K + S + 1
local R = a[at]
at = at + 1
for i = 1, R do
  local m = a[at]
  local first = at + 1
  at = first + m * 2
  local c = a[at]
  local firstCounter = at + 1
  at = firstCounter + c * 3
  local refusing, wait = 0, 0
  for p = first, first + (m - 1) * 2, 2 do
    local k = a[p]
    local need = a[p + 1] * windows[k]
    if need > levels[k] then
      local ms = ceil((need - levels[k]) / limits[k])
      if refusing == 0 or ms > wait then
        refusing, wait = (p - first) / 2 + 1, ms
      end
    end
  end
  for p = firstCounter, firstCounter + (c - 1) * 3, 3 do
    local cap = a[p + 1]
    if cap >= 0 and values[a[p]] + a[p + 2] > cap and (refusing == 0 or refusing <= m) then
      refusing, wait = m + (p - firstCounter) / 3 + 1, 0
    end
  end
  if refusing == 0 then
    for p = first, first + (m - 1) * 2, 2 do
      local k = a[p]
      levels[k] = levels[k] - a[p + 1] * windows[k]
      dirty[k] = true
    end
    for p = firstCounter, firstCounter + (c - 1) * 3, 3 do
      local s, units = a[p], a[p + 2]
      values[s] = values[s] + units
      added[s] = added[s] + units
    end
  else
    result[n + 1], result[n + 2], result[n + 3] = i, refusing, wait
    n = n + 3
  end
end

for k = 1, K do
  if dirty[k] then
    local level = levels[k]
    redis.call('HSET', KEYS[k], 'l', level, 't', now)
    -- The key is redundant once the bucket is full again: let Redis drop it then.
    redis.call('PEXPIRE', KEYS[k], ceil((limits[k] * windows[k] - level) / limits[k]) + 1000)
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
