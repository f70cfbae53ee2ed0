-- admit_v1: check every limit one request is subject to and, only if all pass, reserve them all.
--
-- Requests and tokens per minute use GCRA, a token bucket kept as one number per limit: the key
-- holds the "theoretical arrival time" (TAT, milliseconds on the gateway's clock). The debt
-- TAT - now is how much of the 60 s window is in use; a request of `amount` units adds
-- amount * 60000 / limit ms and passes while the debt stays within the window. One key per
-- limit, O(1) per check, a refund is a subtraction, and OpenAI's headers fall out of it:
-- remaining = what still fits, reset = the debt (time until the bucket is full again).
--
-- Parallel requests: a sorted set of reservation ids scored by lease expiry, so a process that
-- dies holding slots cannot leak them past the lease. Budgets: one integer of micro-USD spent
-- (outstanding reservations included) per budget period; a request is admitted while the spend
-- is under the budget, so concurrent requests can overshoot it by at most one reservation.
--
-- The gateway passes its clock in, so every gateway and the in-process limiter (memory.py, the
-- same algorithm in Python) agree, and tests can move time. Key TTLs only clean up: each stored
-- value says by itself when it stops mattering.
--
-- KEYS[i]  the counter of check i (all in one cluster slot: the caller groups them)
-- ARGV[1]  now, ms          ARGV[2]  reservation id          ARGV[3]  parallel lease, ms
-- ARGV[4]  per check, space-separated: kind (r|t|p|b), limit, amount, ttl ms (budget; 0: none)
-- returns  one string, per check: ok (1|0), remaining, reset ms, retry ms, space-separated
--          (one string and one argument instead of dozens keep the client's parsing cheap)

local WINDOW = 60000
local EPSILON = 1e-6
local now = tonumber(ARGV[1])
local member = ARGV[2]
local lease = tonumber(ARGV[3])
local spec = {}
for word in string.gmatch(ARGV[4], '%S+') do spec[#spec + 1] = word end

local out = {}
local fresh = {}
local all_ok = true

for i, key in ipairs(KEYS) do
  local at = 1 + (i - 1) * 4
  local kind, limit, amount = spec[at], tonumber(spec[at + 1]), tonumber(spec[at + 2])
  local ok, remaining, reset, retry = 1, 0, 0, 0
  if kind == 'r' or kind == 't' then
    if limit <= 0 then
      ok, retry = 0, WINDOW
    else
      local interval = WINDOW / limit
      local tat = math.max(tonumber(redis.call('GET', key) or 0), now)
      local new_tat = tat + amount * interval
      if new_tat - now <= WINDOW + EPSILON then
        fresh[i] = new_tat
        tat = new_tat
      else
        ok, retry = 0, math.ceil(new_tat - now - WINDOW)
      end
      remaining = math.max(0, math.floor((WINDOW - (tat - now)) / interval + EPSILON))
      reset = math.ceil(tat - now)
    end
  elseif kind == 'p' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local used = redis.call('ZCARD', key)
    if used + amount <= limit then
      remaining = limit - used - amount
    else
      -- Slots free when requests end, which no clock predicts: suggest a short wait.
      ok, remaining, retry = 0, math.max(0, limit - used), 1000
    end
  elseif kind == 'b' then
    local spent = tonumber(redis.call('GET', key) or 0)
    if spent < limit then
      remaining = math.max(0, limit - spent - amount)
    else
      ok = 0
    end
  else
    return redis.error_reply('admit_v1: unknown kind ' .. tostring(kind))
  end
  if ok == 0 then all_ok = false end
  out[#out + 1] = string.format('%d %d %d %d', ok, remaining, reset, retry)
end

-- Numbers go back to Redis as strings formatted here: Lua would print large ones as 1e+15.
if all_ok then
  for i, key in ipairs(KEYS) do
    local at = 1 + (i - 1) * 4
    local kind = spec[at]
    if kind == 'r' or kind == 't' then
      local px = string.format('%d', math.ceil(fresh[i] - now) + 1000)
      redis.call('SET', key, string.format('%.17g', fresh[i]), 'PX', px)
    elseif kind == 'p' then
      redis.call('ZADD', key, string.format('%d', now + lease), member)
      redis.call('PEXPIRE', key, ARGV[3])
    elseif tonumber(spec[at + 2]) ~= 0 then
      redis.call('INCRBY', key, spec[at + 2])
      if tonumber(spec[at + 3]) > 0 then redis.call('PEXPIRE', key, spec[at + 3]) end
    end
  end
end

return table.concat(out, ' ')
