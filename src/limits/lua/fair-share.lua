--[[
  fair-share.lua: admission to (and settlement of) an upstream's ceiling shared fairly between the
  keys, or groups of keys, routed there. memory-store.ts (admitShared / settleShared) does the same
  arithmetic in process memory; one contract test runs both.

  The ceiling's buckets are the ones lua/limits.lua keeps (fields l = level, t = last update, in
  unit-milliseconds: units × window), so its settlements and calibration keep working on them.
  Beside them, one hash (the state) holds a record per active entity (a key, or a group): when it
  was last seen, its weight, and per bucket its guarantee: a sub-bucket that refills at the
  entity's share of the ceiling's rate, floor(limit × weight / Σ weights of the active entities)
  per ms, up to `burst_ms` worth of it. An entity not seen for `active_ms` is no longer active:
  its record is dropped and its share goes to the others.

  A request of entity e costing c (unit-ms) is admitted when, for every bucket,
      level − c ≥ Σ over the other active entities of their unused guarantee (if above 0)
  i.e. it takes its own guarantee first and may borrow whatever the others are not guaranteed.
  Then the bucket gives c, and e's guarantee what it had of c (borrowing makes no debt). A
  settlement corrects both to the real usage: one that used more than it reserved leaves its
  guarantee in debt (below 0), repaid as it refills. The invariant level ≥ Σ guarantees
  holds from there on, so every active entity always finds its guaranteed rate; a newcomer starts
  with an empty guarantee (it earns it at its rate), so it cannot take the others' back at once.

  An entity is active until active_ms after its latest request; a refused request that will wait
  for the time advertised (within its max_wait_ms) keeps it active until active_ms after that.

  Priority: a refused request that will wait and has priority p > 0 leaves a marker on its
  entity's record: until it expires (the wait, plus up to active_ms of slack), requests of the
  same entity with a lower priority are refused, so the waiting one takes the room first; it is
  cleared when a request of that priority or above is admitted.

  KEYS   the ceiling's buckets (1..K), then the state hash; all share one {hash tag}
  ARGV[1] MessagePack array: mode (1 admit, 2 settle), K, then per bucket: limit, window_ms,
          units (admit: the cost; settle: what goes back, negative takes more), then active_ms,
          burst_ms, weight, priority, max_wait_ms (what the request may still wait; 0: none)
  ARGV[2] the entity's name

  Admit returns { allowed (1/0), refusing bucket (1-based, 0 none), wait_ms, borrowed (1/0),
  level_1 … level_K } (the levels after admission; refused: what is there for this entity, the
  level less the others' unused guarantees, at least 0); settle returns { level_1 … level_K }.
]]
local tonumber, min, max, floor, ceil = tonumber, math.min, math.max, math.floor, math.ceil
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + floor(tonumber(time[2]) / 1000)
local a = cmsgpack.unpack(ARGV[1])
local me = ARGV[2]
local mode, K = a[1], a[2]
local limits, windows, units, levels = {}, {}, {}, {}
local at = 3
for k = 1, K do
  limits[k], windows[k], units[k] = a[at], a[at + 1], a[at + 2]
  at = at + 3
end
local activeMs, burstMs, weight, priority, maxWait = a[at], a[at + 1], a[at + 2], a[at + 3], a[at + 4]
local state = KEYS[K + 1]

for k = 1, K do
  local capacity = limits[k] * windows[k]
  local found = redis.call('HMGET', KEYS[k], 'l', 't')
  local level = capacity
  if found[1] then
    level = min(capacity, tonumber(found[1]) + max(0, now - tonumber(found[2])) * limits[k])
  end
  levels[k] = level
end

-- The active entities: records active until now or later (the others are dropped).
local others, total, latest = {}, weight, 0
local mine
local all = redis.call('HGETALL', state)
for i = 1, #all, 2 do
  local rec = cmsgpack.unpack(all[i + 1])
  if rec[1] < now then
    redis.call('HDEL', state, all[i])
  elseif all[i] == me then
    mine = rec
  else
    others[#others + 1] = rec
    total = total + rec[2]
    latest = max(latest, rec[1])
  end
end
-- Record: { active until, weight, at, priority marker, marker until, guarantee_1 … guarantee_K }.
local fresh = mine == nil
if fresh then
  if mode == 2 then
    -- Settlement of an entity no longer active: the ceiling only.
    local out = {}
    for k = 1, K do
      local capacity = limits[k] * windows[k]
      levels[k] = min(capacity, levels[k] + units[k] * windows[k])
      redis.call('HSET', KEYS[k], 'l', levels[k], 't', now)
      redis.call('PEXPIRE', KEYS[k], ceil((capacity - levels[k]) / limits[k]) + 1000)
      out[k] = levels[k]
    end
    return out
  end
  mine = { now + activeMs, weight, now, 0, 0 }
  for k = 1, K do
    mine[5 + k] = 0
  end
end

local function guarantee(rec, w, k)
  local rate = floor(limits[k] * w / total)
  return min(rate * burstMs, rec[5 + k] + max(0, now - rec[3]) * rate), rate
end

local mineNow, rates, reserved = {}, {}, {}
for k = 1, K do
  mineNow[k], rates[k] = guarantee(mine, weight, k)
  local sum = 0
  for _, rec in ipairs(others) do
    sum = sum + max(0, (guarantee(rec, rec[2], k)))
  end
  reserved[k] = sum
end

if mode == 2 then
  local out = {}
  for k = 1, K do
    local capacity = limits[k] * windows[k]
    local delta = units[k] * windows[k]
    levels[k] = min(capacity, levels[k] + delta)
    redis.call('HSET', KEYS[k], 'l', levels[k], 't', now)
    redis.call('PEXPIRE', KEYS[k], ceil((capacity - levels[k]) / limits[k]) + 1000)
    mine[5 + k] = min(rates[k] * burstMs, mineNow[k] + delta)
    out[k] = levels[k]
  end
  mine[3] = now
  redis.call('HSET', state, me, cmsgpack.pack(mine))
  return out
end

local refusing, wait, borrowed = 0, 0, 0
if not fresh and mine[4] > priority and mine[5] > now then
  -- A request of this entity with a higher priority waits for room: it goes first.
  refusing, wait = K, mine[5] - now
else
  for k = 1, K do
    local need = units[k] * windows[k]
    if levels[k] - need < reserved[k] then
      local ms = ceil((need + reserved[k] - levels[k]) / max(1, rates[k]))
      if refusing == 0 or ms > wait then
        refusing, wait = k, ms
      end
    end
  end
end

mine[1], mine[2], mine[3] = max(mine[1], now + activeMs), weight, now
if refusing == 0 then
  for k = 1, K do
    local need = units[k] * windows[k]
    if mineNow[k] < need then
      borrowed = 1
    end
    levels[k] = levels[k] - need
    mine[5 + k] = mineNow[k] >= need and mineNow[k] - need or min(mineNow[k], 0)
    redis.call('HSET', KEYS[k], 'l', levels[k], 't', now)
    redis.call('PEXPIRE', KEYS[k], ceil((limits[k] * windows[k] - levels[k]) / limits[k]) + 1000)
  end
  if mine[4] <= priority then
    mine[4], mine[5] = 0, 0
  end
else
  for k = 1, K do
    mine[5 + k] = mineNow[k]
  end
  if wait <= maxWait then
    mine[1] = max(mine[1], now + wait + activeMs)
    if priority > 0 and priority >= mine[4] then
      mine[4], mine[5] = priority, max(mine[5], now + wait + min(activeMs, wait + 100))
    end
  end
end
redis.call('HSET', state, me, cmsgpack.pack(mine))
-- The hash lives as long as its longest-active entity.
redis.call('PEXPIRE', state, max(latest, mine[1]) - now + 1000)

local out = { refusing == 0 and 1 or 0, refusing, wait, borrowed }
for k = 1, K do
  -- Refused: what the ceiling has for this entity (beyond the others' guarantees), as its 429 says.
  out[4 + k] = refusing == 0 and levels[k] or max(0, levels[k] - reserved[k])
end
return out
