-- The keys of KEYS that hold a live value (a tombstone is absent).
local live = {}
for _, key in ipairs(KEYS) do
    local current = redis.call('GET', key)
    if current and not is_tombstone(current) then
        table.insert(live, key)
    end
end
return live
