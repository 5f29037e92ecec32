-- resume.lua: after a store outage, restart the presence clock of one chunk of
-- live sessions at `at` (and, on the first chunk, count `at` as a keepalive
-- of every registered node).
-- KEYS[1] live index   KEYS[2] nodes zset   KEYS[3] alive hash
-- ARGV[1] prefix   ARGV[2] at   ARGV[3] cursor: '-inf' for the first chunk,
-- else the creation order the previous chunk returned   ARGV[4] chunk size
-- ARGV[5] node lease expiry (at + node lease)
-- Reply: {next cursor or '' when done, sessions moved in this chunk}.
-- The walk follows the live index in creation order (which never changes),
-- so sessions that end or are touched between chunks do not shift it: every
-- session live for the whole walk is visited exactly once, and the ones
-- created during it were seen after `at` anyway. last_seen only ever
-- moves later, so presence ends only move later and the session's armed
-- entry in the due index stays a lower bound: a claim re-arms it at the true
-- deadline, computed in Python by the core (the lazy re-arm). The version is
-- bumped, so a decision taken in Python on the old state is taken again.
local prefix, at, cursor, size = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local first, from = '-inf', '-inf'
if cursor == '-inf' then
  for _, node in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[5], node)
    local last = redis.call('HGET', KEYS[3], node)
    if not last or tonumber(last) < tonumber(at) then
      redis.call('HSET', KEYS[3], node, at)
    end
  end
else
  first, from = live_chunk(cursor), '(' .. cursor
end
-- The first chunk may hold no session after the cursor; each other one holds
-- at least one (an emptied chunk leaves the index), so size + 1 chunks are
-- enough to find `size` sessions.
local chunks = redis.call('ZRANGEBYSCORE', KEYS[1], first, '+inf', 'LIMIT', 0, size + 1)
local visited, moved = 0, 0
for _, chunk in ipairs(chunks) do
  local page = redis.call('ZRANGEBYSCORE', live_chunk_key(prefix, chunk), from, '+inf',
    'WITHSCORES', 'LIMIT', 0, size - visited)
  for i = 1, #page, 2 do
    local hash = session_key(prefix, page[i])
    local head = redis.call('HMGET', hash, F.state, F.last_seen)
    if head[1] and head[1] ~= 'ended' and tonumber(head[2]) < tonumber(at) then
      redis.call('HSET', hash, F.last_seen, at)
      redis.call('HINCRBY', hash, F.version, 1)
      moved = moved + 1
    end
    cursor = page[i + 1]
  end
  visited = visited + #page / 2
  if visited >= size then
    return {cursor, moved}
  end
end
return {'', moved}
