-- reap.lua: give up nodes whose lease ran out, and release up to `limit` of
-- their connections.
-- KEYS[1] nodes zset   KEYS[2] alive hash   KEYS[3] reaping hash   KEYS[4] due zset
-- ARGV[1] prefix   ARGV[2] now   ARGV[3] limit   ARGV[4] the caller's node token
-- Reply: 1 when released connections remain for a next call, else 0.
-- A dead node's session set is renamed out of its way first, so the node (if
-- it was only slow) registers again under a new identity without mixing its
-- new connections with the ones being released. The caller never reaps itself.
local prefix, now = ARGV[1], ARGV[2]
local budget = tonumber(ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)
for _, node in ipairs(dead) do
  if node ~= ARGV[4] then
    redis.call('ZREM', KEYS[1], node)
    local last = redis.call('HGET', KEYS[2], node) or now
    redis.call('HDEL', KEYS[2], node)
    local set = prefix .. 'node:' .. node
    if redis.call('EXISTS', set) == 1 then
      redis.call('RENAME', set, prefix .. 'reap:' .. node)
      redis.call('HSET', KEYS[3], node, last)
    end
  end
end
local pending = redis.call('HGETALL', KEYS[3])
for i = 1, #pending, 2 do
  if budget <= 0 then
    return 1
  end
  local node, last = pending[i], pending[i + 1]
  local set = prefix .. 'reap:' .. node
  local ids = redis.call('SPOP', set, budget)
  for _, id in ipairs(ids) do
    release(prefix, id, F.node_count .. node, last, KEYS[4], now)
  end
  budget = budget - #ids
  if redis.call('EXISTS', set) == 0 then
    redis.call('HDEL', KEYS[3], node)
  end
end
if redis.call('HLEN', KEYS[3]) > 0 then
  return 1
end
return 0
