--[[
  key-put.lua: compare-and-set one run-time key record and keep the digest index in step.

  KEYS[1]  hash id -> record JSON          (both keys share one {hash tag})
  KEYS[2]  hash sha256 hex -> id           (live keys only)
  ARGV[1]  id
  ARGV[2]  the record JSON the caller read ('' = there must be no record with this id)
  ARGV[3]  the new record JSON
  ARGV[4]  the digest the old record was reachable by ('' = none)
  ARGV[5]  the digest the new record is reachable by ('' = none: revoked)

  Returns 1 when written, 0 when the record changed since it was read, -1 when the new digest
  already belongs to another key.
]]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current or '') ~= ARGV[2] then
  return 0
end
if ARGV[5] ~= '' then
  local owner = redis.call('HGET', KEYS[2], ARGV[5])
  if owner and owner ~= ARGV[1] then
    return -1
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' and ARGV[4] ~= ARGV[5] then
  redis.call('HDEL', KEYS[2], ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[5], ARGV[1])
end
return 1
