-- end.lua: end a live session for a reason; of racing enders exactly one wins.
-- KEYS[1] session hash      KEYS[2] transcript list   KEYS[3] due zset
-- KEYS[4] live index        KEYS[5] ended zset        KEYS[6] sequence counter
-- ARGV[1] prefix   ARGV[2] session id   ARGV[3] now   ARGV[4] reason
-- ARGV[5] expected version or ''        ARGV[6] retention of ended keys, ms
-- ARGV[7] when the winner's end lease runs out
-- Reply: {'OK', fields} of the ended session, else a refusal ({'E', reason}
-- means someone else ended it first).
local stop = guard(KEYS[1], ARGV[3], ARGV[5])
if stop then
  return stop
end
finish(KEYS[1], ARGV[3], ARGV[4])
retire(ARGV[1], ARGV[2], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[6],
  ARGV[7])
return {'OK', redis.call('HGETALL', KEYS[1])}
