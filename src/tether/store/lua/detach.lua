-- detach.lua: count one connection of this node fewer, if the session is still
-- at the version the caller decided on (compare-and-set).
-- KEYS[1] session hash      KEYS[2] due zset          KEYS[3] the node's session set
-- ARGV[1] node token   ARGV[2] now   ARGV[3] expected version
-- ARGV[4] an earlier deadline to arm, or ''   ARGV[5] session id
-- Reply: {'OK'}; {'Z'} when this node counts no connection there (a duplicate
-- close, or its connections were released when it was given up for dead);
-- else a refusal ({'S', fields}: decide again).
local field = F.node_count .. ARGV[1]
local head = redis.call('HMGET', KEYS[1], F.state, F.end_reason, F.version, field)
local stop = gone(head[1], head[2])
if stop then
  return stop
end
if not head[4] or tonumber(head[4]) <= 0 then
  return {'Z'}
end
if head[3] ~= ARGV[3] then
  return {'S', redis.call('HGETALL', KEYS[1])}
end
if redis.call('HINCRBY', KEYS[1], field, -1) <= 0 then
  redis.call('HDEL', KEYS[1], field)
  redis.call('SREM', KEYS[3], ARGV[5])
end
redis.call('HINCRBY', KEYS[1], F.connections, -1)
redis.call('HSET', KEYS[1], F.last_seen, ARGV[2])
redis.call('HINCRBY', KEYS[1], F.version, 1)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], F.armed_at, ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
return {'OK'}
