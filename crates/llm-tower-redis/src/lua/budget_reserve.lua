-- ARGV[2] id (no ':')   ARGV[3] amount   ARGV[4] limit, or "" for none   ARGV[5] ttl (us)
-- Returns {1, spent, held} when held, {0, spent, held} when it does not fit (spent and
-- held before this reservation, as decimal strings).
purge()
local amount = tonumber(ARGV[3])
local ttl = tonumber(ARGV[5])
if not (amount and ttl) then
  return redis.error_reply('llm-tower: bad arguments to budget_reserve')
end
local spent_s = redis.call('GET', spentk) or '0'
local held_s = redis.call('HGET', holdsk, 'held') or '0'
if ARGV[4] ~= '' then
  local limit = tonumber(ARGV[4])
  local sum = (tonumber(spent_s) or 0) + (tonumber(held_s) or 0) + amount
  if not limit or sum >= EXACT or sum <= -EXACT then
    return redis.error_reply('llm-tower: budget counter out of the exact range (2^53 nano-USD)')
  end
  if sum > limit then
    return {0, spent_s, held_s}
  end
end
redis.call('HINCRBY', holdsk, 'held', ARGV[3])
redis.call('HSET', holdsk, ARGV[2], ARGV[3])
redis.call('ZADD', expk, fmt(now + ttl), ARGV[2])
local top = redis.call('ZRANGE', expk, -1, -1, 'WITHSCORES')
local last = tonumber(top[2]) or (now + ttl)
local keep = fmt(math.floor((last - now) / 1000) + 60000)
redis.call('PEXPIRE', holdsk, keep)
redis.call('PEXPIRE', expk, keep)
return {1, spent_s, held_s}
