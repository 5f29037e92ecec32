-- drop.lua: forget a claim batch whose every session was decided and committed.
-- KEYS[1] claims zset   KEYS[2] the batch list
-- Reply: 1 when dropped, 0 when the batch was no longer the caller's (its
-- lease ran out and another claimer took it over: that one decides again).
if redis.call('ZREM', KEYS[1], KEYS[2]) == 0 then
  return 0
end
redis.call('DEL', KEYS[2])
return 1
