-- apply.lua: commit changes decided in Python, each only if its session is still
-- at the version it was decided on (compare-and-set). A batch of one or more:
-- a claim commits every session it decided in one call.
-- KEYS[1] due zset   KEYS[2] live index   KEYS[3] ended zset   KEYS[4] sequence counter
-- KEYS[3 + 2i] the i-th session's hash   KEYS[4 + 2i] its transcript list
-- ARGV[1] prefix   ARGV[2] retention of ended keys, ms
-- ARGV[3] when the end lease runs out (for the sessions retired)
-- then per session, in KEYS order: its id; the expected version; the deadline:
-- '' keep the armed one, 'retire' the session has ended, else the time to arm
-- (hash field F.armed_at and due score); the number n of field, value pairs to
-- set; those 2n strings (only the fields that changed; an empty value deletes
-- its field: optional fields are absent while empty).
-- Reply: one entry per session, in order: {'OK'}, else a refusal ({'S', fields}
-- carries the current version).
local prefix, retention, lease = ARGV[1], ARGV[2], ARGV[3]
local out = {}
local a = 4
for i = 1, (#KEYS - 4) / 2 do
  local hash, transcript = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local id, expected, arm = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local first = a + 4
  a = first + 2 * tonumber(ARGV[a + 3])
  if redis.call('HGET', hash, F.version) ~= expected then
    out[i] = refusal(hash)
  else
    local set, unset = {}, {}
    for j = first, a - 1, 2 do
      if ARGV[j + 1] == '' then -- an empty optional field is not stored at all
        unset[#unset + 1] = ARGV[j]
      else
        set[#set + 1] = ARGV[j]
        set[#set + 1] = ARGV[j + 1]
      end
    end
    if #set > 0 then
      redis.call('HSET', hash, unpack(set))
    end
    if #unset > 0 then
      redis.call('HDEL', hash, unpack(unset))
    end
    redis.call('HINCRBY', hash, F.version, 1)
    if arm == 'retire' then
      retire(prefix, id, hash, transcript, KEYS[1], KEYS[2], KEYS[3], KEYS[4], retention, lease)
    elseif arm ~= '' then
      redis.call('HSET', hash, F.armed_at, arm)
      redis.call('ZADD', KEYS[1], arm, id)
    end
    out[i] = {'OK'}
  end
end
return out
