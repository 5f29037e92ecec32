-- apply.lua: commit a change decided in Python, if the session is still at the
-- version it was decided on (compare-and-set).
-- KEYS[1] session hash      KEYS[2] transcript list   KEYS[3] due zset
-- KEYS[4] live zset         KEYS[5] ended zset        KEYS[6] sequence counter
-- ARGV[1] prefix   ARGV[2] session id   ARGV[3] expected version
-- ARGV[4] deadline: '' keep the armed one, 'retire' the session has ended,
--         else the time to arm (hash field armed_at and due score)
-- ARGV[5] retention of ended keys, ms
-- ARGV[6] when the end lease runs out (used with 'retire')
-- ARGV[7...] fields to set, as field, value pairs
-- Reply: {'OK'}, else a refusal ({'S', fields} carries the current version).
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[3] then
  return refusal(KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('HINCRBY', KEYS[1], 'v', 1)
if ARGV[4] == 'retire' then
  retire(ARGV[1], ARGV[2], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[5],
    ARGV[6])
elseif ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'armed_at', ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
end
return {'OK'}
