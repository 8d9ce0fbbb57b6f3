-- Sets the key to ARGV[2] (with ARGV[3] ms of life, or none for 0) if it
-- still holds what the read saw: nothing (ARGV[1] empty), the envelope or
-- tombstone whose write id is ARGV[1] (ARGV[4] `id`), or exactly the bytes
-- ARGV[1] (ARGV[4] `same`: a counter a refresh replaces).
local current = redis.call('GET', KEYS[1])
if current then
    if ARGV[4] == 'same' then
        if current ~= ARGV[1] then
            return 0
        end
    elseif #ARGV[1] ~= 8 or string.sub(current, WRITE_ID_FROM, WRITE_ID_TO) ~= ARGV[1] then
        return 0
    end
elseif #ARGV[1] ~= 0 then
    return 0
end
set_with_ttl(KEYS[1], ARGV[2], ARGV[3])
return 1
