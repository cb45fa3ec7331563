-- ARGV[2] reservation id   ARGV[3] actual amount   ARGV[4] retention of spent (ms) or ""
-- Releases the reservation (if it is still held) and adds the actual amount to the
-- spend, in one step. Returns {spent before (decimal string), released (0/1)}.
purge()
local released = 0
local a = redis.call('HGET', holdsk, ARGV[2])
if a then
  released = 1
  redis.call('HDEL', holdsk, ARGV[2])
  redis.call('ZREM', expk, ARGV[2])
  if redis.call('ZCARD', expk) == 0 then
    redis.call('DEL', holdsk)
  else
    redis.call('HINCRBY', holdsk, 'held', fmt(-(tonumber(a) or 0)))
  end
end
local before = redis.call('GET', spentk) or '0'
if ARGV[3] ~= '0' then
  redis.call('INCRBY', spentk, ARGV[3])
  retain(spentk, ARGV[4])
end
return {before, released}
