-- config.lua: replace a live session's config.
-- KEYS[1] session hash
-- ARGV[1] prefix   ARGV[2] the reference of the new config if interned, else ''
-- ARGV[3] n   ARGV[4 .. 3 + n] the interned config's field, value pairs (n = 0
-- for an inline config)   ARGV[4 + n], ARGV[5 + n] the hash's config field and
-- value: F.config and the JSON, or F.config_ref and the reference (see
-- config_take in prelude.lua; a live hash holds one of the two, never pieces)
-- Reply: {'OK', fields} after the change, {'N'} or {'E', reason}.
local head = redis.call('HMGET', KEYS[1], F.state, F.end_reason, F.config_ref)
local stop = gone(head[1], head[2])
if stop then
  return stop
end
local prefix, ref, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
if ref ~= head[3] then -- the reference moves
  if ref ~= '' then
    config_take(prefix, ref, {unpack(ARGV, 4, 3 + n)})
  end
  if head[3] then
    config_drop(prefix, head[3])
  end
end
redis.call('HDEL', KEYS[1], F.config, F.config_ref)
redis.call('HSET', KEYS[1], ARGV[4 + n], ARGV[5 + n])
redis.call('HINCRBY', KEYS[1], F.version, 1)
return {'OK', redis.call('HGETALL', KEYS[1])}
