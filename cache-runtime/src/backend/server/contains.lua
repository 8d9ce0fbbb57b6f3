-- Whether KEYS[1] holds a live value (a tombstone is absent).
local current = redis.call('GET', KEYS[1])
if current and not is_tombstone(current) then
    return 1
end
return 0
