-- Sets the key unless it holds a live value (a tombstone counts as absent).
local current = redis.call('GET', KEYS[1])
if current and not is_tombstone(current) then
    return 0
end
set_with_ttl(KEYS[1], ARGV[1], ARGV[2])
return 1
