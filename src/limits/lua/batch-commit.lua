--[[
  batch-commit.lua: the upstream accepted a batch; its provisional reservation becomes the
  batch's record.

  KEYS[1]   the key's queue hash (model -> tokens enqueued), as in batch-reserve.lua
  KEYS[2]   the key's held hash (id -> record); one {hash tag} with KEYS[1]
  ARGV[1]   provisional reservation id
  ARGV[2]   batch id
  ARGV[3]   ttl (ms) of both hashes, refreshed here

  Returns 1 committed; 0 the reservation is gone (released meanwhile); 2 the batch was held
  already (the same batch answered twice): this reservation's tokens are given back.
]]
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  for _, pair in ipairs(cjson.decode(record).m) do
    if redis.call('HINCRBY', KEYS[1], pair[1], '-' .. pair[2]) <= 0 then
      redis.call('HDEL', KEYS[1], pair[1])
    end
  end
  return 2
end
redis.call('HSET', KEYS[2], ARGV[2], record)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
