-- The remaining life of the live value at KEYS[1], in ms: -1 for none,
-- -2 when there is no live value (a tombstone is absent).
local current = redis.call('GET', KEYS[1])
if not current or is_tombstone(current) then
    return -2
end
return redis.call('PTTL', KEYS[1])
