-- config.lua: replace a live session's config.
-- KEYS[1] session hash
-- ARGV[1] the config, JSON ('' for none)
-- Reply: {'OK', fields} after the change, {'N'} or {'E', reason}.
local head = redis.call('HMGET', KEYS[1], 'state', 'end_reason')
if not head[1] then
  return {'N'}
end
if head[1] == 'ended' then
  return {'E', head[2]}
end
redis.call('HSET', KEYS[1], 'config', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'v', 1)
return {'OK', redis.call('HGETALL', KEYS[1])}
