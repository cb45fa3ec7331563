--
-- Budget counters in integer nano-USD. Reservations expire: each one is a field of the
-- holds hash (id -> amount, plus the running total `held`) and a member of the expiry
-- set (scored by its expiry time in us); every call first releases the expired ones.
-- The holds hash and the expiry set carry a TTL past the last expiry, so they vanish
-- together; settled spend never expires (unless a retention is given).
--
-- KEYS[1]  spent (string, INCRBY)   KEYS[2]  holds (hash)   KEYS[3]  expiry (zset)
-- ARGV[1]  now (us), or "" to read the server's TIME
local spentk, holdsk, expk = KEYS[1], KEYS[2], KEYS[3]
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
if not now then
  return redis.error_reply('llm-tower: bad time argument')
end
local function fmt(x)
  return string.format('%d', x)
end
-- Exact integers in Lua numbers end at 2^53 nano-USD (about 9 million USD).
local EXACT = 9007199254740992

-- Releases up to 1000 expired reservations (the rest on the next calls).
local function purge()
  local ids = redis.call('ZRANGEBYSCORE', expk, '-inf', fmt(now), 'LIMIT', 0, 1000)
  if #ids == 0 then
    return
  end
  local freed = 0
  for i = 1, #ids do
    local a = redis.call('HGET', holdsk, ids[i])
    if a then
      freed = freed + (tonumber(a) or 0)
    end
  end
  redis.call('HDEL', holdsk, unpack(ids))
  redis.call('ZREM', expk, unpack(ids))
  if redis.call('ZCARD', expk) == 0 then
    redis.call('DEL', holdsk)
  elseif freed ~= 0 then
    redis.call('HINCRBY', holdsk, 'held', fmt(-freed))
  end
end

local function retain(key, retention)
  if retention ~= '' then
    redis.call('PEXPIRE', key, retention)
  end
end
