-- complete.lua: acknowledge an end's pipeline, if the caller's fence still holds it.
-- KEYS[1] session hash   KEYS[2] ending zset
-- ARGV[1] session id     ARGV[2] fence
-- Reply: 1 when acknowledged, 0 for a superseded fence or an end already completed.
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
if redis.call('HGET', KEYS[1], F.fence) ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
