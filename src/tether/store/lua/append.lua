-- append.lua: append one message to a live session's transcript, within its caps.
-- KEYS[1] session hash   KEYS[2] transcript list
-- ARGV[1] now   ARGV[2] expected version or ''   ARGV[3] the message, JSON
-- ARGV[4] max messages ('0': no cap)   ARGV[5] max transcript bytes ('0': no cap)
-- ARGV[6] the message's size (tether.core.caps.message_size)
-- Reply: the message's seq (an integer), else a refusal; {'F', count, bytes}
-- when the append would pass a cap (the rule of TranscriptCap.check, which
-- words the refusal from these numbers): nothing is written then.
local stop = guard(KEYS[1], ARGV[1], ARGV[2])
if stop then
  return stop
end
local max_messages, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local size = tonumber(ARGV[6])
local held = redis.call('HMGET', KEYS[1], F.message_count, F.transcript_bytes)
local count, bytes = tonumber(held[1]) or 0, tonumber(held[2]) or 0
if (max_messages > 0 and count + 1 > max_messages) or (max_bytes > 0 and bytes + size > max_bytes) then
  return {'F', count, bytes}
end
local seq = redis.call('HINCRBY', KEYS[1], F.message_count, 1)
redis.call('HINCRBY', KEYS[1], F.transcript_bytes, size)
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], F.version, 1)
return seq
