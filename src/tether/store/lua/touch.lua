-- touch.lua: record signs of clients (and, with activity, of engagement) for a
-- batch of touches; a single touch is a batch of one.
-- KEYS[i] the session hash of the i-th touch
-- ARGV[3i-2] now   ARGV[3i-1] '1' activity, '0' heartbeat
-- ARGV[3i] expected version or ''
-- Reply: one entry per touch, in order: 0 when recorded, else a refusal
-- ({'N'}, {'E', reason}, {'S', fields}). Without a version, anything that may
-- be a transition goes back to Python: a deadline that may have passed,
-- activity during a warning, or a session's first heartbeat (it starts the
-- presence clock, which may bring the deadline forward: Python re-arms it).
local function touch(hash, now, activity, expected)
  local stop, state, head = guard(hash, now, expected)
  if stop then
    return stop
  end
  if expected == '' and activity ~= '1' and not head[5] then
    return {'S', redis.call('HGETALL', hash)}
  end
  -- The version guard() read, plus one, set in the same HSET: one command per touch.
  local version = tonumber(head[4]) + 1
  if activity == '1' then
    if expected == '' and state == 'warning' then
      return {'S', redis.call('HGETALL', hash)}
    end
    redis.call('HSET', hash, F.last_seen, now, F.last_activity, now, F.version, version)
  else
    redis.call('HSET', hash, F.last_seen, now, F.version, version)
  end
  return 0
end

local out = {}
for i, hash in ipairs(KEYS) do
  out[i] = touch(hash, ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i])
end
return out
