-- Bumps a version: `INCR` when it exists, else a fresh random version, so
-- that a version key lost to eviction never comes back at an old value.
-- Returns the new version as an integer (a Lua number formatted as text
-- would read `7.6879840689566e+15`).
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCR', KEYS[1])
end
redis.call('SET', KEYS[1], ARGV[1])
return tonumber(ARGV[1])
