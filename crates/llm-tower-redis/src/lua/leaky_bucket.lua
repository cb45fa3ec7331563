-- llm-tower leaky_bucket v2
-- GCRA, the same exact arithmetic as llm_tower_layers::rate_limit::Gcra, in microseconds.
-- Times are kept as whole microseconds plus a fraction in units of 1/rate microsecond
-- (0 <= fraction < rate), so a request of weight w moves the theoretical arrival time by
-- exactly w * per / rate and exactly `burst` unit requests pass from idle. The caller
-- splits every increment into (whole, fraction), so the script only adds and compares
-- numbers below 2^53 (whole times in us, fractions below rate <= 2^52).
--
-- KEYS[1]  the theoretical arrival time, "whole:fraction"
-- ARGV[1], ARGV[2]  this request's increment (whole us, fraction)
-- ARGV[3], ARGV[4]  tau, the increment of the whole burst (whole us, fraction)
-- ARGV[5]  rate (>= 1)    ARGV[6]  per (us, >= 1)    ARGV[7]  burst
-- ARGV[8]  max wait (us)  ARGV[9]  now (us), or "" for TIME
--
-- Returns {1, wait, free_whole, free_fraction, reset} when admitted, {0, retry_after}
-- when denied.
local inc_w = tonumber(ARGV[1])
local inc_f = tonumber(ARGV[2])
local tau_w = tonumber(ARGV[3])
local tau_f = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local per = tonumber(ARGV[6])
local burst = tonumber(ARGV[7])
local max_wait = tonumber(ARGV[8])
local now
if ARGV[9] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[9])
end
if not (inc_w and inc_f and tau_w and tau_f and rate and per and burst and max_wait and now)
    or rate < 1 or per < 1 then
  return redis.error_reply('llm-tower: bad arguments to leaky_bucket')
end

-- (whole, fraction) arithmetic.
local function add(aw, af, bw, bf)
  local f = af + bf
  if f >= rate then
    return aw + bw + 1, f - rate
  end
  return aw + bw, f
end
local function less(aw, af, bw, bf)
  return aw < bw or (aw == bw and af < bf)
end
-- a - b for a >= b.
local function sub(aw, af, bw, bf)
  if af >= bf then
    return aw - bw, af - bf
  end
  return aw - bw - 1, af - bf + rate
end
local function ceil(w, f)
  if f > 0 then
    return w + 1
  end
  return w
end

local tat_w, tat_f = 0, 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local w, f = string.match(stored, '^(%d+):(%d+)$')
  tat_w, tat_f = tonumber(w) or 0, tonumber(f) or 0
  if tat_f >= rate then
    -- The rate changed under this key: round the old time up (stricter).
    tat_w, tat_f = tat_w + 1, 0
  end
end
local base_w, base_f = tat_w, tat_f
if less(base_w, base_f, now, 0) then
  base_w, base_f = now, 0
end
local new_w, new_f = add(base_w, base_f, inc_w, inc_f)
local wait = 0
if not less(new_w, new_f, tau_w, tau_f) then
  local at_w, at_f = sub(new_w, new_f, tau_w, tau_f)
  if less(now, 0, at_w, at_f) then
    local d_w, d_f = sub(at_w, at_f, now, 0)
    wait = ceil(d_w, d_f)
  end
end
if wait > max_wait then
  return {0, wait}
end
local reset = ceil(sub(new_w, new_f, now, 0))
-- Idle (equivalent to a fresh key) once the bucket has drained at new_tat.
redis.call('SET', KEYS[1], string.format('%d:%d', new_w, new_f), 'PX',
  string.format('%d', math.floor(reset / 1000) + 1000))
-- What the bucket still holds when this request starts: start + tau - new_tat (>= 0,
-- at most tau), as (whole, fraction); the caller turns it into whole units.
local free_w, free_f = 0, 0
local end_w, end_f = add(now + wait, 0, tau_w, tau_f)
if not less(end_w, end_f, new_w, new_f) then
  free_w, free_f = sub(end_w, end_f, new_w, new_f)
end
return {1, wait, free_w, free_f, reset}
