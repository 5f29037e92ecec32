-- claim.lua: hand out ends whose lease ran out, then lease up to `limit` due
-- sessions to the caller, as one batch.
-- KEYS[1] due zset   KEYS[2] ending zset   KEYS[3] claims zset   KEYS[4] batch counter (P claim)
-- ARGV[1] prefix   ARGV[2] now   ARGV[3] limit   ARGV[4] claim lease expiry
-- ARGV[5] end lease expiry   ARGV[6] retention of ended keys, ms
-- Reply: {ends, batch, ids}: ends as {id, fields, id, fields, ...}; the
-- caller's batch key ('' when it leased nothing) and the ids it holds, one
-- string separated by spaces.
--
-- An end not completed in time is handed out again with the next fence and a
-- fresh lease, and its keys are kept for another retention, so its transcript
-- is still there to archive.
--
-- The lease looks at no session: it moves the due entries, in bulk, out of the
-- due index into a batch (a string under P claim:<n>) scored in the claims zset
-- by when its lease runs out. No other caller sees them until the caller
-- decides each one and commits it (apply.lua re-arms or retires it, by
-- compare-and-set on the version) and then drops the batch (drop.lua). A
-- caller that dies first leaves the batch to run out: the next claim after
-- that takes the whole batch over (under a new key), and deciding again a
-- session that was already re-armed is harmless. Entries of sessions that
-- are gone or ended leave the index with the rest and are skipped when read.
-- So the lease costs O(log n + k) for k due out of n, a few bulk commands.
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
-- A batch is one string, its ids separated by spaces (ids never hold one):
-- one allocation, where a list would make one per id.
local taken = {}
-- Batches whose claimer ran out of time, whole (they may exceed the limit).
local left = limit - #stale
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 4)) do
  if left <= 0 then
    break
  end
  redis.call('ZREM', KEYS[3], old)
  local ids = redis.call('GET', old)
  redis.call('DEL', old)
  if ids and ids ~= '' then
    taken[#taken + 1] = ids
    local _, spaces = string.gsub(ids, ' ', '')
    left = left - spaces - 1
  end
end
if left > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, left)
  if #due > 0 then
    -- The first #due entries by rank are exactly these: the range starts at -inf.
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #due - 1)
    taken[#taken + 1] = table.concat(due, ' ')
  end
end
if #taken == 0 then
  return {ends, '', ''}
end
local ids = table.concat(taken, ' ')
local batch = prefix .. 'claim:' .. redis.call('INCR', KEYS[4])
redis.call('SET', batch, ids)
redis.call('ZADD', KEYS[3], ARGV[4], batch)
return {ends, batch, ids}
