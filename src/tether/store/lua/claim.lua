-- claim.lua: lease up to `limit` due sessions to the caller.
-- KEYS[1] due zset
-- ARGV[1] prefix   ARGV[2] now   ARGV[3] limit   ARGV[4] lease expiry
-- Reply: {id, fields, id, fields, ...}, earliest deadline first.
-- Each due entry is re-scored to the lease expiry, so no other caller sees it
-- until the caller commits the session's next state (apply.lua, which re-arms
-- or retires it) or dies and the lease runs out. Entries of sessions that are
-- gone or ended are dropped.
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  local hash = session_key(ARGV[1], id)
  local state = redis.call('HGET', hash, 'state')
  if state and state ~= 'ended' then
    redis.call('ZADD', KEYS[1], ARGV[4], id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGETALL', hash)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
