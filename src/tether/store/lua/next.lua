-- next.lua: the earliest time a scheduler must look at the index again.
-- KEYS[1] due zset   KEYS[2] ending zset   KEYS[3] reaping hash   KEYS[4] claims zset
-- Reply: the earliest armed deadline, end lease or claim batch lease (as Redis formats the score:
-- it reads back exactly); '0' while a dead node's connections wait to be
-- released; nil when nothing is armed. Other nodes' leases are not included:
-- schedulers on a shared store look at least every poll interval, and that
-- is when a dead node is noticed (its sessions' presence runs from its last
-- keepalive whenever that is).
if redis.call('HLEN', KEYS[3]) > 0 then
  return '0'
end
local best = nil
local function consider(score)
  if score and (best == nil or tonumber(score) < tonumber(best)) then
    best = score
  end
end
consider(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
consider(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])
consider(redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')[2])
return best
