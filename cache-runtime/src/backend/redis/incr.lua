-- Adds ARGV[1] to a counter; a missing (or invalidated) counter starts at
-- 0 with ARGV[2] ms of life (none for `0`).
local current = redis.call('GET', KEYS[1])
if current and is_tombstone(current) then
    redis.call('DEL', KEYS[1])
end
if ARGV[2] ~= '0' then
    redis.call('SET', KEYS[1], 0, 'NX', 'PX', ARGV[2])
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
