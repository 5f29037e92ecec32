-- prelude.lua: helpers shared by the session scripts; prepended to each of them.
--
-- Keys, all under one prefix P (passed as ARGV[1] where a script derives keys):
--   P s:<id>    hash: one session (fields: see tether/store/redis/codec.py)
--   P m:<id>    list: its transcript, one JSON array per message
--   P u:<user>  zset: the user's live sessions, scored by creation order
--   P live      zset: the chunks of the live index that are not empty, each
--               scored by its number (see live_add)
--   P live:<n>  zset: the live sessions of creation chunk n, scored by
--               creation order
--   P ended     zset: retained ended sessions, scored by end order
--   P due       zset: one armed deadline per live session, except while a
--               claim holds the session (then it is in that claim's batch)
--   P count     counter: live sessions
--   P claims    zset: claim batches not yet dropped, scored by when their
--               lease runs out
--   P claim:<t>:<n> list: the sessions of node t's claim batch n
--   P seq       counter: creation and end order
--   P ending    zset: ended sessions whose pipeline is not completed yet,
--               scored by when their end lease runs out
--   P nodes     zset: registered nodes (their current identity token), scored
--               by when their node lease runs out
--   P alive     hash: node token -> time of its last keepalive
--   P node:<t>  set: sessions node t counts connections for
--   P reaping   hash: dead node token -> time of its last keepalive, while
--               its connections are being released
--   P reap:<t>  set: dead node t's sessions still to release
--   P cfg:<ref> hash: an interned config (see config_take)
--
-- A session hash's fields have one-character names (Redis stores every name in
-- every hash); F names them for the scripts, as codec.Field does for Python,
-- and codec.py's docstring says what each holds. Besides the record's fields
-- the hash holds F.fence (its end's fencing token: 1 for the first claimant of
-- the end, +1 for each re-claim), F.transcript_bytes (absent until the first
-- append) and 'c:<t>' (how many of its connections node
-- t counts; F.connections is their sum). The optional fields (F.ever_heartbeat,
-- F.warning_reason, F.ended_at, F.end_reason, F.busy) are absent while empty.
--
-- Every write to a session hash bumps its version field F.version, so a caller
-- that decided something in Python at that version can commit it only if
-- nothing moved. Every time (hash fields, zset scores, ARGV) is an integer
-- count of microseconds since the epoch (codec.num): exact as a Lua number, and
-- stored by Redis as a 64-bit integer. Times are written exactly as the caller
-- sent them (Lua would print numbers with 14 digits); Lua only compares them.

local F = {
  user = 'u',
  kind = 'k',
  config = 'j', -- then 'j1', 'j2'... for the pieces of a long config (ended only)
  config_ref = 'g', -- a live session's interned config (see config_take)
  created_at = 't',
  message_count = 'm',
  armed_at = 'a',
  version = 'v',
  last_activity = 'l',
  last_seen = 'p',
  connections = 'c',
  ever_attached = 'h',
  ever_heartbeat = 'y', -- absent until the first heartbeat
  state = 's',
  warning_reason = 'w',
  ended_at = 'e',
  end_reason = 'r',
  policy = 'o',
  fence = 'f',
  transcript_bytes = 'b', -- the sizes of the messages appended (tether.core.caps)
  busy = 'i', -- open busy marks (tether.core.session.busy_effect); absent while none
  node_count = 'c:', -- prefix of 'c:<t>'
}

local function session_key(prefix, id)
  return prefix .. 's:' .. id
end

local function transcript_key(prefix, id)
  return prefix .. 'm:' .. id
end

local function user_key(prefix, user)
  return prefix .. 'u:' .. user
end

-- The live index lists every live session in creation order (for listing,
-- stats and resume), cut into chunks of LIVE_CHUNK consecutive creation
-- orders. A chunk is a small zset, which Redis keeps listpack-encoded (up to
-- zset-max-listpack-entries, 128 by default): about 40 bytes per session,
-- where one zset of every live session costs about 145. P live indexes the
-- chunks that are not empty, so the oldest and the newest are one lookup away.
local LIVE_CHUNK = 100

local function live_chunk_key(prefix, chunk)
  return prefix .. 'live:' .. chunk
end

local function live_chunk(order)
  return math.floor(tonumber(order) / LIVE_CHUNK)
end

local function live_add(prefix, live, order, id)
  local chunk = live_chunk(order)
  redis.call('ZADD', live_chunk_key(prefix, chunk), order, id)
  redis.call('ZADD', live, chunk, chunk)
end

local function live_remove(prefix, live, order, id)
  local chunk = live_chunk(order)
  local key = live_chunk_key(prefix, chunk)
  redis.call('ZREM', key, id)
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', live, chunk)
  end
end

-- A config longer than a compact hash value (codec.PIECE) is interned: stored
-- once, under P cfg:<ref> (ref: a digest of its JSON, codec.config_ref), for
-- every live session that has it; their hashes hold F.config_ref = ref instead
-- of F.config. The interned hash holds the JSON's pieces (F.config, 'j1',
-- 'j2'...) and CONFIG_REFS, the number of live sessions referring to it; the
-- last one to drop its reference deletes it. Its content never changes.
local CONFIG_REFS = 'n'

local function config_key(prefix, ref)
  return prefix .. 'cfg:' .. ref
end

-- Take one reference to config `ref`; `pieces` (field, value pairs) store it
-- if no live session refers to it yet.
local function config_take(prefix, ref, pieces)
  local key = config_key(prefix, ref)
  if redis.call('HINCRBY', key, CONFIG_REFS, 1) == 1 then
    redis.call('HSET', key, unpack(pieces))
  end
end

local function config_drop(prefix, ref)
  local key = config_key(prefix, ref)
  if redis.call('HINCRBY', key, CONFIG_REFS, -1) <= 0 then
    redis.call('DEL', key)
  end
end

-- Copy interned config `ref` into session hash `hash` (as pieces: the hash
-- stays compact) and drop the session's reference: an ended session is
-- retained after its references are gone.
local function config_inline(prefix, hash, ref)
  local fields = redis.call('HGETALL', config_key(prefix, ref))
  local pieces = {}
  for i = 1, #fields, 2 do
    if fields[i] ~= CONFIG_REFS then
      pieces[#pieces + 1] = fields[i]
      pieces[#pieces + 1] = fields[i + 1]
    end
  end
  if #pieces == 0 then -- lost (the prefix was emptied under a live session)
    pieces = {F.config, ''}
  end
  redis.call('HSET', hash, unpack(pieces))
  redis.call('HDEL', hash, F.config_ref)
  config_drop(prefix, ref)
end

-- The reply for a session that is gone, from its F.state and F.end_reason
-- values: {'N'} unknown, {'E', reason} ended; nil for a live one.
local function gone(state, reason)
  if not state then
    return {'N'}
  end
  if state == 'ended' then
    return {'E', reason}
  end
  return nil
end

-- The reply for a session the caller may not simply change: {'N'} unknown,
-- {'E', reason} ended, else {'S', fields} for the caller to decide in Python.
local function refusal(hash)
  local head = redis.call('HMGET', hash, F.state, F.end_reason)
  return gone(head[1], head[2]) or {'S', redis.call('HGETALL', hash)}
end

-- First, nil when the caller may change the live session at `now`, else the
-- reply to return; second, the session's state. Without an expected version only a session
-- whose armed deadline lies after `now` passes (none of its clocks can have run
-- out); with one, the caller has checked the session in Python at that version.
-- Third, the fields it read (state, end_reason, armed_at, version, ever_heartbeat).
local function guard(hash, now, expected)
  -- F.ever_heartbeat rides along for touch.lua: one HMGET, not a second call.
  local head = redis.call('HMGET', hash, F.state, F.end_reason, F.armed_at, F.version,
                          F.ever_heartbeat)
  local stop = gone(head[1], head[2])
  if stop then
    return stop, head[1], head
  end
  if expected == '' then
    if tonumber(now) < tonumber(head[3]) then
      return nil, head[1], head
    end
  elseif head[4] == expected then
    return nil, head[1], head
  end
  return {'S', redis.call('HGETALL', hash)}, head[1], head
end

-- Mark the session ended (the fields a Python `finish` would set).
local function finish(hash, now, reason)
  redis.call('HSET', hash, F.state, 'ended', F.ended_at, now, F.end_reason, reason)
  redis.call('HDEL', hash, F.warning_reason, F.busy)
  redis.call('HINCRBY', hash, F.version, 1)
end

-- Move an ended session out of the live indexes into retention: its keys expire
-- after `retention_ms`, and the ended index forgets a few expired ones per call.
-- Its end is leased to the caller (fence 1) until `lease_until`. The nodes that
-- counted connections to it stop listing it (its 'c:' fields stay, naming them).
-- An interned config is copied back into its hash (config_inline).
local function retire(prefix, id, hash, transcript, due, live, ended, seq, retention_ms,
                      lease_until)
  local head = redis.call('HMGET', hash, F.user, F.connections, F.config_ref)
  if head[3] then
    config_inline(prefix, hash, head[3])
  end
  local users = user_key(prefix, head[1])
  local order = redis.call('ZSCORE', users, id) -- its creation order
  redis.call('ZREM', due, id)
  redis.call('DECR', prefix .. 'count')
  if order then
    live_remove(prefix, live, order, id)
  end
  redis.call('ZREM', users, id)
  redis.call('HINCRBY', hash, F.fence, 1)
  redis.call('ZADD', prefix .. 'ending', lease_until, id)
  if head[2] ~= '0' then -- 'c:' fields exist only while they count connections
    local skip = #F.node_count
    for _, field in ipairs(redis.call('HKEYS', hash)) do
      if string.sub(field, 1, skip) == F.node_count then
        redis.call('SREM', prefix .. 'node:' .. string.sub(field, skip + 1), id)
      end
    end
  end
  local oldest = redis.call('ZRANGE', ended, 0, 3)
  for _, other in ipairs(oldest) do
    if redis.call('EXISTS', session_key(prefix, other)) == 1 then
      break
    end
    redis.call('ZREM', ended, other)
  end
  redis.call('ZADD', ended, redis.call('INCR', seq), id)
  redis.call('PEXPIRE', hash, retention_ms)
  redis.call('PEXPIRE', transcript, retention_ms)
end


-- Release the connections node field `field` counted for session `id`: a
-- live session's presence clock then runs from `last` (the node's last sign of
-- life) unless another node still holds a connection, and the session comes
-- due at once so a claim re-decides it (and re-arms it at its true deadline).
local function release(prefix, id, field, last, due, now)
  local hash = session_key(prefix, id)
  local held = tonumber(redis.call('HGET', hash, field) or '0')
  if held == 0 then
    return
  end
  redis.call('HDEL', hash, field)
  local head = redis.call('HMGET', hash, F.state, F.connections, F.last_seen, F.armed_at)
  if not head[1] or head[1] == 'ended' then
    return
  end
  local left = math.max(0, tonumber(head[2]) - held)
  redis.call('HSET', hash, F.connections, left)
  if tonumber(last) > tonumber(head[3]) then
    redis.call('HSET', hash, F.last_seen, last)
  end
  redis.call('HINCRBY', hash, F.version, 1)
  if left == 0 and tonumber(now) < tonumber(head[4]) then
    redis.call('HSET', hash, F.armed_at, now)
    redis.call('ZADD', due, now, id)
  end
end
