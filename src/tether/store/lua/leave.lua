-- leave.lua: deregister a node; its connections are released as of `now`.
-- KEYS[1] nodes zset   KEYS[2] alive hash   KEYS[3] reaping hash
-- ARGV[1] prefix   ARGV[2] node token   ARGV[3] now
-- Reply: 1 when connections wait to be released (reap.lua does it), else 0.
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
local set = ARGV[1] .. 'node:' .. ARGV[2]
if redis.call('EXISTS', set) == 0 then
  return 0
end
redis.call('RENAME', set, ARGV[1] .. 'reap:' .. ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return 1
