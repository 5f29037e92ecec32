-- attach.lua: count one more attached connection (presence is held while any is).
-- KEYS[1] session hash
-- ARGV[1] now   ARGV[2] expected version or ''
-- Reply: {'OK', fields} after the change, else a refusal.
local stop = guard(KEYS[1], ARGV[1], ARGV[2])
if stop then
  return stop
end
redis.call('HINCRBY', KEYS[1], 'connections', 1)
redis.call('HSET', KEYS[1], 'ever_attached', '1', 'last_seen', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'v', 1)
return {'OK', redis.call('HGETALL', KEYS[1])}
