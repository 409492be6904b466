--[[
  batch-release.lua: give a reservation's tokens back, exactly once. The record is removed in the
  same step, so a second call for the same id finds nothing and changes nothing.

  KEYS[1]   the key's queue hash (model -> tokens enqueued), as in batch-reserve.lua
  KEYS[2]   the key's held hash (id -> record); one {hash tag} with KEYS[1]
  ARGV[1]   batch id or provisional reservation id

  Returns 1 released, 0 nothing held under that id.
]]
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
for _, pair in ipairs(cjson.decode(record).m) do
  if redis.call('HINCRBY', KEYS[1], pair[1], '-' .. pair[2]) <= 0 then
    redis.call('HDEL', KEYS[1], pair[1])
  end
end
return 1
