-- llm-tower adaptive_blocked v1
-- The milliseconds the target KEYS[1] is still blocked for (0 when it is not).
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  return 0
end
return left
