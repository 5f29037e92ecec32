-- claim.lua: hand out ends whose lease ran out, then lease up to `limit` due
-- sessions to the caller, as one batch.
-- KEYS[1] due zset   KEYS[2] ending zset   KEYS[3] claims zset
-- KEYS[4] the caller's new batch: a fresh key, P claim:<node>:<n>
-- ARGV[1] prefix   ARGV[2] now   ARGV[3] limit   ARGV[4] claim lease expiry
-- ARGV[5] end lease expiry   ARGV[6] retention of ended keys, ms
-- Reply: {ends, count}: ends as {id, fields, id, fields, ...}, and how many
-- sessions the batch holds (0: no batch was made).
--
-- An end not completed in time is handed out again with the next fence and a
-- fresh lease, and its keys are kept for another retention, so its transcript
-- is still there to archive.
--
-- The lease looks at no session: it moves the due entries, in bulk, out of the
-- due index into a batch (a list) scored in the claims zset by when its lease
-- runs out. No other caller sees them until the caller
-- decides each one and commits it (apply.lua re-arms or retires it, by
-- compare-and-set on the version) and then drops the batch (drop.lua). A
-- caller that dies first leaves the batch to run out: the next claim after
-- that takes the whole batch over (into its own), and deciding again a
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
-- The due ids never pass through Lua (making 10k Lua strings costs more than
-- the rest of the lease): SORT ... BY nosort on a zset takes its first
-- entries in score order, and STORE copies them into the batch list inside
-- Redis. The caller reads the batch right after.
local count = 0
local left = limit - #stale
if left > 0 then
  count = math.min(left, redis.call('ZCOUNT', KEYS[1], '-inf', now))
  if count > 0 then
    redis.call('SORT', KEYS[1], 'BY', 'nosort', 'LIMIT', 0, count, 'STORE', KEYS[4])
    -- The same entries: the first `count` by rank, as the range starts at -inf.
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, count - 1)
  end
end
-- Batches whose claimer ran out of time join this one, whole (past the limit).
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 4)) do
  redis.call('ZREM', KEYS[3], old)
  local ids = redis.call('LRANGE', old, 0, -1)
  for i = 1, #ids, 1000 do -- Lua's unpack takes a few thousand values at most
    count = redis.call('RPUSH', KEYS[4], unpack(ids, i, math.min(i + 999, #ids)))
  end
  redis.call('DEL', old)
end
if count > 0 then
  redis.call('ZADD', KEYS[3], ARGV[4], KEYS[4])
end
return {ends, count}
