-- create.lua: store a new session, first ending the user's oldest beyond the limit;
-- or, asked to reuse, hand back the user's live session of the kind instead.
-- KEYS[1] session hash      KEYS[2] transcript list   KEYS[3] due zset
-- KEYS[4] live index        KEYS[5] ended zset        KEYS[6] sequence counter
-- ARGV[1] prefix            ARGV[2] session id        ARGV[3] user
-- ARGV[4] now               ARGV[5] max per user ('' for no limit)
-- ARGV[6] first deadline    ARGV[7] retention of ended keys, ms
-- ARGV[8] when the end lease of a replaced session runs out
-- ARGV[9] the kind to reuse a live session of, or '' to always create
-- ARGV[10] the reference of its interned config, or '' for one stored inline
-- ARGV[11] n   ARGV[12 .. 11 + n] the interned config's field, value pairs
-- (stored if no live session refers to it yet; n = 0 for an inline config)
-- ARGV[12 + n ...] the new hash, as field, value pairs
-- Reply: {'D'} when the id exists (live or retained); {'X', id, fields} for the
-- user's newest live session of the kind to reuse (Python decides whether its
-- clocks have run out: then it ends it and calls again); else {'OK', replaced}
-- with {id, fields} of each session ended as 'replaced', oldest first (a
-- hash does not hold its own id).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'D'}
end
local prefix, id, now = ARGV[1], ARGV[2], ARGV[4]
local users = user_key(prefix, ARGV[3])
if ARGV[9] ~= '' then
  for _, other in ipairs(redis.call('ZREVRANGE', users, 0, -1)) do
    local hash = session_key(prefix, other)
    local head = redis.call('HMGET', hash, F.kind, F.state)
    if head[1] == ARGV[9] and head[2] and head[2] ~= 'ended' then
      return {'X', other, redis.call('HGETALL', hash)}
    end
  end
end
local replaced = {}
if ARGV[5] ~= '' then
  local keep = math.max(1, tonumber(ARGV[5])) - 1
  while redis.call('ZCARD', users) > keep do
    local old = redis.call('ZRANGE', users, 0, 0)[1]
    local hash = session_key(prefix, old)
    local state = redis.call('HGET', hash, F.state)
    if state and state ~= 'ended' then
      finish(hash, now, 'replaced')
      retire(prefix, old, hash, transcript_key(prefix, old), KEYS[3], KEYS[4], KEYS[5],
        KEYS[6], ARGV[7], ARGV[8])
      replaced[#replaced + 1] = old
      replaced[#replaced + 1] = redis.call('HGETALL', hash)
    else
      redis.call('ZREM', users, old)
    end
  end
end
redis.call('DEL', KEYS[2])
local ref, n = ARGV[10], tonumber(ARGV[11])
if ref ~= '' then
  config_take(prefix, ref, {unpack(ARGV, 12, 11 + n)})
end
redis.call('HSET', KEYS[1], unpack(ARGV, 12 + n))
local order = redis.call('INCR', KEYS[6])
redis.call('INCR', prefix .. 'count')
redis.call('ZADD', KEYS[3], ARGV[6], id)
live_add(prefix, KEYS[4], order, id)
redis.call('ZADD', users, order, id)
return {'OK', replaced}
