--[[
  batch-reserve.lua: reserve a batch's tokens against a key's queue limit, per model. All or
  nothing, in one atomic step.

  KEYS[1]   the key's queue hash: model -> tokens enqueued now
  KEYS[2]   the key's held hash: reservation id -> record (JSON: {"c": created_ms,
            "m": [[model, "tokens"], ...]}, tokens as strings of digits)
            Both share one {hash tag}.
  ARGV[1]   reservation id (a provisional "hold:..." id)
  ARGV[2]   the record to keep (JSON, as above)
  ARGV[3]   ttl (ms) of both hashes, refreshed here: a key idle that long has no batch pending
  ARGV[4..] for each model, three values: model, tokens, limit

  Returns { 1 } when reserved, or { 0, refusing model (1-based), tokens enqueued for it now }.
]]
local n = (#ARGV - 3) / 3
for i = 1, n do
  local base = 3 + (i - 1) * 3
  local enqueued = tonumber(redis.call('HGET', KEYS[1], ARGV[base + 1]) or '0')
  if enqueued + tonumber(ARGV[base + 2]) > tonumber(ARGV[base + 3]) then
    return { 0, i, enqueued }
  end
end
for i = 1, n do
  local base = 3 + (i - 1) * 3
  redis.call('HINCRBY', KEYS[1], ARGV[base + 1], ARGV[base + 2])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return { 1 }
