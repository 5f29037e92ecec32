-- read.lua: the hashes of the sessions of a claim batch, to decide them.
-- KEYS[i] the i-th session's hash
-- Reply: one entry per key, in order: its fields, or {} for a session gone.
local out = {}
for i, hash in ipairs(KEYS) do
  out[i] = redis.call('HGETALL', hash)
end
return out
