-- Gives a live value a new expiry: ARGV[1] ms, `0` for none, `now` to delete it.
local current = redis.call('GET', KEYS[1])
if not current or is_tombstone(current) then
    return 0
end
if ARGV[1] == 'now' then
    redis.call('DEL', KEYS[1])
elseif ARGV[1] == '0' then
    redis.call('PERSIST', KEYS[1])
else
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
