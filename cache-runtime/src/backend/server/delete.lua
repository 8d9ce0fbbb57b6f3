-- Deletes every key of KEYS; returns how many held a live value.
local live = 0
for _, key in ipairs(KEYS) do
    local current = redis.call('GET', key)
    if current and not is_tombstone(current) then
        live = live + 1
    end
end
redis.call('DEL', unpack(KEYS))
return live
