-- llm-tower adaptive_block v1
-- Blocks a target for ARGV[1] milliseconds unless it is already blocked for longer.
-- The block is the key's own expiry (PX), so it ends on Redis's clock and needs no
-- cleanup. Returns the milliseconds the target is now blocked for.
local ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
  return ms
end
return left
