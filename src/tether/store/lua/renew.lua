-- renew.lua: extend the end leases the caller still holds.
-- KEYS[1] ending zset   KEYS[1 + i] the i-th end's session hash
-- ARGV[1] new lease expiry   ARGV[2i] the i-th session id   ARGV[2i + 1] its fence
-- Reply: one entry per end: 1 when renewed (or already leased later), 0 when the
-- fence no longer holds it.
local out = {}
for i = 2, #KEYS do
  local id, fence = ARGV[2 * (i - 1)], ARGV[2 * (i - 1) + 1]
  if redis.call('ZSCORE', KEYS[1], id) and redis.call('HGET', KEYS[i], F.fence) == fence then
    redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[1], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
