-- Sets the key unless it holds a live value (a tombstone counts as absent).
-- With ARGV[2] `now` the value would expire as it is written: nothing is
-- kept, and whether it would have been added is the answer.
local current = redis.call('GET', KEYS[1])
if current and not is_tombstone(current) then
    return 0
end
if ARGV[2] == 'now' then
    return 1
end
set_with_ttl(KEYS[1], ARGV[1], ARGV[2])
return 1
