-- claim.lua: hand out ends whose lease ran out, then lease up to `limit` due
-- sessions to the caller.
-- KEYS[1] due zset   KEYS[2] ending zset
-- ARGV[1] prefix   ARGV[2] now   ARGV[3] limit   ARGV[4] claim lease expiry
-- ARGV[5] end lease expiry   ARGV[6] retention of ended keys, ms
-- Reply: {ends, due}, each {id, fields, id, fields, ...}.
-- An end not completed in time is handed out again with the next fence and a
-- fresh lease, and its keys are kept for another retention, so its transcript
-- is still there to archive. Each due entry is re-scored to the claim lease
-- expiry, so no other caller sees it until the caller commits the session's
-- next state (apply.lua, which re-arms or retires it) or dies and the lease
-- runs out. Entries of sessions that are gone or ended are dropped.
-- The work is O(claimed): one read of each due session's hash, and the
-- re-scoring done by a few ZADDs of many members each.
local prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ends = {}
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(stale) do
  local hash = session_key(prefix, id)
  if redis.call('HGET', hash, F.state) == 'ended' then
    redis.call('HINCRBY', hash, F.fence, 1)
    redis.call('ZADD', KEYS[2], ARGV[5], id)
    redis.call('PEXPIRE', hash, ARGV[6])
    redis.call('PEXPIRE', transcript_key(prefix, id), ARGV[6])
    ends[#ends + 1] = id
    ends[#ends + 1] = redis.call('HGETALL', hash)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
local out = {}
local left = limit - #stale
if left > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, left)
  local lease = {}
  local function flush()
    if #lease > 0 then
      redis.call('ZADD', KEYS[1], unpack(lease))
      lease = {}
    end
  end
  for _, id in ipairs(due) do
    local fields = redis.call('HGETALL', session_key(prefix, id))
    local state = nil
    for i = 1, #fields, 2 do
      if fields[i] == F.state then
        state = fields[i + 1]
        break
      end
    end
    if state and state ~= 'ended' then
      lease[#lease + 1] = ARGV[4]
      lease[#lease + 1] = id
      if #lease >= 2000 then -- Lua's unpack takes a few thousand values at most
        flush()
      end
      out[#out + 1] = id
      out[#out + 1] = fields
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
  flush()
end
return {ends, out}
