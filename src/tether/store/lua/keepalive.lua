-- keepalive.lua: renew (or first register) a node's lease.
-- KEYS[1] nodes zset   KEYS[2] alive hash
-- ARGV[1] node token   ARGV[2] now   ARGV[3] lease expiry   ARGV[4] '1' to register
-- Reply: 1 when the node is registered now, 0 when it had been reaped (a new
-- identity must register).
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and ARGV[4] ~= '1' then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
