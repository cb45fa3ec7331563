-- ARGV[2] reservation id   ARGV[3] actual amount   ARGV[4] retention of spent (ms) or ""
-- ARGV[5..] more reservation ids to release (spend settled while Redis was unreachable,
--           added now in one step per counter)
-- Releases the reservations (those still held) and adds the actual amount to the spend,
-- in one step. Returns {spent before (decimal string), released (0/1, the first id)}.
purge()
local function release(id)
  if id == 'held' then
    return 0
  end
  local a = redis.call('HGET', holdsk, id)
  if not a then
    return 0
  end
  redis.call('HDEL', holdsk, id)
  redis.call('ZREM', expk, id)
  if redis.call('ZCARD', expk) == 0 then
    redis.call('DEL', holdsk)
  else
    redis.call('HINCRBY', holdsk, 'held', fmt(-(tonumber(a) or 0)))
  end
  return 1
end
local released = release(ARGV[2])
for i = 5, #ARGV do
  release(ARGV[i])
end
local before = redis.call('GET', spentk) or '0'
if ARGV[3] ~= '0' then
  redis.call('INCRBY', spentk, ARGV[3])
  retain(spentk, ARGV[4])
end
return {before, released}
