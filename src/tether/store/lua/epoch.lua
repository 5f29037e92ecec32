-- epoch.lua: read the store's epoch, seeding it when there is none.
-- KEYS[1] P epoch (string: a random value written at the store's first use; see
--         tether/core/epoch.py)
-- ARGV[1] a fresh random epoch, written only if KEYS[1] is missing
-- Reply: the epoch held before this call, or false when there was none (the
-- store then holds ARGV[1]). One round trip, atomic: of several nodes that find
-- it missing, exactly one seeds it and the others read that one.
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[1])
end
return held
