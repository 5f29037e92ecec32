-- stats.lua: the live count and the oldest and newest live creation times.
-- KEYS[1] live counter   KEYS[2] live index
-- ARGV[1] prefix
-- Reply: {count} when empty, else {count, oldest created_at, newest created_at}.
-- create.lua counts each new session, retire() each end (see prelude.lua).
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count == 0 then
  return {0}
end
local function created_at(chunks, at)
  local chunk = redis.call('ZRANGE', KEYS[2], chunks, chunks)[1]
  local id = redis.call('ZRANGE', live_chunk_key(ARGV[1], chunk), at, at)[1]
  return redis.call('HGET', session_key(ARGV[1], id), F.created_at)
end
return {count, created_at(0, 0), created_at(-1, -1)}
