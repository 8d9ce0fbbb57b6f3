-- Bumps a version: `INCR` when the key holds a version, else a fresh random
-- version, so that a version key lost to eviction never comes back at an
-- old value, and one that holds what no bump can add to (other text, a
-- number past 2^53, another type) is replaced instead of failing the
-- invalidation for good. Returns the new version as an integer (a Lua
-- number formatted as text would read `7.6879840689566e+15`).
if redis.call('TYPE', KEYS[1]).ok == 'string' then
    local current = redis.call('GET', KEYS[1])
    -- A version: digits, below 2^53 (exact in a Lua number).
    if string.match(current, '^%d+$') and #current <= 16
        and tonumber(current) < 9007199254740991 then
        return redis.call('INCR', KEYS[1])
    end
end
redis.call('SET', KEYS[1], ARGV[1])
return tonumber(ARGV[1])
