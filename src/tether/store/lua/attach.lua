-- attach.lua: count one more attached connection (presence is held while any is),
-- under the attaching node's identity.
-- KEYS[1] session hash      KEYS[2] nodes zset        KEYS[3] the node's session set
-- ARGV[1] now   ARGV[2] expected version or ''   ARGV[3] node token   ARGV[4] session id
-- Reply: {'OK', fields} after the change, {'R'} when the node is not registered
-- (it was reaped: it must register again first), else a refusal.
if not redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  return {'R'}
end
local stop = guard(KEYS[1], ARGV[1], ARGV[2])
if stop then
  return stop
end
redis.call('HINCRBY', KEYS[1], F.connections, 1)
redis.call('HINCRBY', KEYS[1], F.node_count .. ARGV[3], 1)
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], F.ever_attached, '1', F.last_seen, ARGV[1])
redis.call('HINCRBY', KEYS[1], F.version, 1)
return {'OK', redis.call('HGETALL', KEYS[1])}
