-- append.lua: append one message to a live session's transcript.
-- KEYS[1] session hash   KEYS[2] transcript list
-- ARGV[1] now   ARGV[2] expected version or ''   ARGV[3] the message, JSON
-- Reply: the message's seq (an integer), else a refusal.
local stop = guard(KEYS[1], ARGV[1], ARGV[2])
if stop then
  return stop
end
local seq = redis.call('HINCRBY', KEYS[1], F.message_count, 1)
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], F.version, 1)
return seq
