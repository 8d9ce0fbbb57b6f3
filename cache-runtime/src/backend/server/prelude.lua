-- What every script starts with: the tombstone test, and `SET` with a
-- time to live in ms (`0` for none).
local function is_tombstone(value)
    return string.byte(value, 1) == FORMAT and string.byte(value, 2) == TOMBSTONE
end
local function set_with_ttl(key, value, ttl)
    if ttl == '0' then
        redis.call('SET', key, value)
    else
        redis.call('SET', key, value, 'PX', ttl)
    end
end
