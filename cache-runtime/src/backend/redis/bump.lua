-- Bumps a version: `INCR` when it exists, else a fresh random version, so
-- that a version key lost to eviction never comes back at an old value.
if redis.call('EXISTS', KEYS[1]) == 1 then
    return tostring(redis.call('INCR', KEYS[1]))
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
