-- retract.lua: remove one message whose append was never acknowledged.
-- KEYS[1] transcript list
-- ARGV[1] the message's seq
-- Reply: 1 when removed, 0 when there was no such message.
-- Message seq n sits at index n - 1 for the life of the list: the entry is
-- replaced by '' (a tombstone the reader skips), so later messages keep their
-- places and numbers, and numbers are never reused (message_count stays).
local index = tonumber(ARGV[1]) - 1
if index < 0 or index >= redis.call('LLEN', KEYS[1]) then
  return 0
end
if redis.call('LINDEX', KEYS[1], index) == '' then
  return 0
end
redis.call('LSET', KEYS[1], index, '')
return 1
