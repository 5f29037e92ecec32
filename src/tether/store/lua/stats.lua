-- stats.lua: the live count and the oldest and newest live creation times.
-- KEYS[1] live zset
-- ARGV[1] prefix
-- Reply: {count} when empty, else {count, oldest created_at, newest created_at}.
local count = redis.call('ZCARD', KEYS[1])
if count == 0 then
  return {0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local newest = redis.call('ZRANGE', KEYS[1], -1, -1)[1]
return {
  count,
  redis.call('HGET', session_key(ARGV[1], oldest), 'created_at'),
  redis.call('HGET', session_key(ARGV[1], newest), 'created_at'),
}
