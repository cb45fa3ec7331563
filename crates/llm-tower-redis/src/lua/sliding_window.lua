-- llm-tower sliding_window v1
-- Exact sliding log, the same arithmetic as llm_tower_layers::rate_limit::SlidingLog,
-- in microseconds. Closed window [t - window, t]; denied requests are not recorded;
-- admitted requests are recorded at their slot time (now + wait), so waiting callers
-- queue first come, first served; equal slot times share one log entry.
--
-- KEYS[1]  the log: a list of "time:weight" entries, oldest first (times never decrease)
-- KEYS[2]  the total weight of the log
-- ARGV[1]  limit          ARGV[2]  window (us)     ARGV[3]  weight
-- ARGV[4]  max wait (us)  ARGV[5]  now (us), or "" to read the server's TIME
--
-- Returns {1, wait, remaining, reset} when admitted, {0, retry_after} when denied,
-- {2, capacity} when the weight exceeds the limit (all times in us).
local log, sumk = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local weight = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local now
if ARGV[5] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[5])
end
if not (limit and window and weight and max_wait and now) then
  return redis.error_reply('llm-tower: bad arguments to sliding_window')
end
if weight > limit then
  return {2, limit}
end

local CHUNK = 128
local function fmt(x)
  return string.format('%d', x)
end
local function parse(e)
  local c = string.find(e, ':', 1, true)
  return tonumber(string.sub(e, 1, c - 1)), tonumber(string.sub(e, c + 1))
end

local total_s = redis.call('GET', sumk)
local total = tonumber(total_s or '0') or 0
local dirty = false
if not total_s then
  -- No total but maybe a log (the total was evicted): rebuild it from the log, so that
  -- a lost total never lets more through.
  local all = redis.call('LRANGE', log, 0, -1)
  for i = 1, #all do
    local _, w = parse(all[i])
    total = total + w
    dirty = true
  end
end

-- Drop the entries that have left the closed window [now - window, now]: usually none
-- or one, so look at the oldest first and read in growing chunks only when needed.
local lower = now - window
local first = redis.call('LINDEX', log, 0)
if first then
  local t0 = parse(first)
  local size = 8
  while t0 and t0 < lower do
    local chunk = redis.call('LRANGE', log, 0, size - 1)
    local k = 0
    for i = 1, #chunk do
      local t, w = parse(chunk[i])
      if t >= lower then
        break
      end
      total = total - w
      k = i
    end
    if k > 0 then
      redis.call('LTRIM', log, k, -1)
      dirty = true
    end
    if k < size then
      break
    end
    size = math.min(size * 4, CHUNK)
  end
end

local n = redis.call('LLEN', log)
if n == 0 then
  total = 0
end
local last_t, last_w = nil, 0
if n > 0 then
  last_t, last_w = parse(redis.call('LINDEX', log, -1))
end

-- Visits the entries oldest first, reading growing chunks (most scans stop early),
-- until visit(t, w) returns true. Returns whether it stopped.
local function scan(visit)
  local idx, size = 0, 8
  while idx < n do
    local chunk = redis.call('LRANGE', log, idx, idx + size - 1)
    if #chunk == 0 then
      return false
    end
    for i = 1, #chunk do
      local t, w = parse(chunk[i])
      if visit(t, w) then
        return true
      end
    end
    idx = idx + #chunk
    size = math.min(size * 4, CHUNK)
  end
  return false
end

-- The weight of the entries at or after `from`.
local function weight_since(from)
  if from <= lower then
    return total
  end
  local below = 0
  scan(function(t, w)
    if t >= from then
      return true
    end
    below = below + w
    return false
  end)
  return total - below
end

-- The earliest time >= start at which `weight` fits.
local function earliest(start)
  local lo = start - window
  local counted = weight_since(lo)
  if counted + weight <= limit then
    return start
  end
  local need = counted + weight - limit
  local found = nil
  scan(function(t, w)
    if t >= lo then
      need = need - w
      if need <= 0 then
        -- The entry at t leaves the closed window once now - window > t.
        found = t + window + 1
        return true
      end
    end
    return false
  end)
  -- Not found is unreachable while weight <= limit; stay safe: once everything has left.
  if not found and last_t then
    found = last_t + window + 1
  end
  if not found or found < start then
    return start
  end
  return found
end

local start = now
if last_t and last_t > start then
  start = last_t
end
local at = earliest(start)
local wait = at - now
-- Both keys are idle once the newest entry (at `newest`) has left the window.
local function keep(newest)
  return fmt(math.floor((newest + window - now) / 1000) + 1000)
end
if wait > max_wait then
  if dirty then
    if n == 0 then
      redis.call('DEL', sumk)
    else
      -- Always with a TTL: the sum may have been evicted (SET ... KEEPTTL would then
      -- create it without one), and the log keeps its own but gets it again anyway.
      local ttl = keep(last_t)
      redis.call('SET', sumk, fmt(total), 'PX', ttl)
      redis.call('PEXPIRE', log, ttl)
    end
  end
  return {0, wait}
end

if last_t == at then
  redis.call('LSET', log, -1, fmt(at) .. ':' .. fmt(last_w + weight))
else
  redis.call('RPUSH', log, fmt(at) .. ':' .. fmt(weight))
  n = n + 1
end
total = total + weight
local in_window = weight_since(at - window)
local remaining = limit - in_window
if remaining < 0 then
  remaining = 0
end
local ttl = keep(at)
redis.call('SET', sumk, fmt(total), 'PX', ttl)
redis.call('PEXPIRE', log, ttl)
return {1, wait, remaining, at + window + 1 - now}
