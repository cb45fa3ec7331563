-- llm-tower leaky_bucket v1
-- GCRA, the same arithmetic as llm_tower_layers::rate_limit::Gcra, in microseconds.
-- The increments are computed by the caller with exact integer arithmetic (ceil).
--
-- KEYS[1]  the theoretical arrival time (us)
-- ARGV[1]  increment of this request's weight (us)
-- ARGV[2]  tau: increment of the whole burst (us)
-- ARGV[3]  increment of one unit (us, >= 1)
-- ARGV[4]  burst          ARGV[5]  max wait (us)   ARGV[6]  now (us), or "" for TIME
--
-- Returns {1, wait, remaining, reset} when admitted, {0, retry_after} when denied.
local inc = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local one = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local max_wait = tonumber(ARGV[5])
local now
if ARGV[6] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[6])
end
if not (inc and tau and one and burst and max_wait and now) or one < 1 then
  return redis.error_reply('llm-tower: bad arguments to leaky_bucket')
end

local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local base = tat
if now > base then
  base = now
end
local new_tat = base + inc
local allowed_at = new_tat - tau
if allowed_at < 0 then
  allowed_at = 0
end
local wait = allowed_at - now
if wait < 0 then
  wait = 0
end
if wait > max_wait then
  return {0, wait}
end
-- Idle (equivalent to a fresh key) once the bucket has drained at new_tat.
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
  string.format('%d', math.floor((new_tat - now) / 1000) + 1000))
local free = now + wait + tau - new_tat
if free < 0 then
  free = 0
end
local remaining = math.floor(free / one)
if remaining > burst then
  remaining = burst
end
return {1, wait, remaining, new_tat - now}
