-- Gives the lease at KEYS[1] ARGV[2] ms more life if ARGV[1] still holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
