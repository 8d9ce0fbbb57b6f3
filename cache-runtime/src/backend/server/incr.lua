-- Adds ARGV[1] to a counter. A missing (or invalidated) counter is created
-- at 0 with ARGV[2] ms of life (`0`: none) when ARGV[3] is `1`; with
-- ARGV[2] `now` it would expire at once, so nothing is kept. Returns the
-- new value, or nil when nothing was counted (a missing counter not created).
local current = redis.call('GET', KEYS[1])
if current and is_tombstone(current) then
    redis.call('DEL', KEYS[1])
    current = false
end
if not current then
    if ARGV[3] ~= '1' or ARGV[2] == 'now' then
        return false
    end
    if ARGV[2] ~= '0' then
        redis.call('SET', KEYS[1], 0, 'PX', ARGV[2])
    end
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
