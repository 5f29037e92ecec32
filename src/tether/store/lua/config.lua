-- config.lua: replace a live session's config.
-- KEYS[1] session hash
-- ARGV the config as field, value pairs: F.config ('j') then 'j1', 'j2'...
-- (a long config is cut into pieces so the hash stays compact; see codec.py)
-- Reply: {'OK', fields} after the change, {'N'} or {'E', reason}.
local head = redis.call('HMGET', KEYS[1], F.state, F.end_reason)
if not head[1] then
  return {'N'}
end
if head[1] == 'ended' then
  return {'E', head[2]}
end
local piece = #ARGV / 2
while redis.call('HDEL', KEYS[1], F.config .. piece) == 1 do
  piece = piece + 1
end
redis.call('HSET', KEYS[1], unpack(ARGV))
redis.call('HINCRBY', KEYS[1], F.version, 1)
return {'OK', redis.call('HGETALL', KEYS[1])}
