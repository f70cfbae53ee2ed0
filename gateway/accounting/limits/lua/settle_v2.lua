-- settle_v2: replace what admit_v1 reserved by what was really used, or undo a reservation.
--
-- Each check gets a delta: used - reserved tokens (TPM), micro-USD (budget), -1 to give back a
-- request (RPM, when a reservation is rolled back) or a parallel slot. A negative delta never
-- takes a bucket past full or a spend below zero, and a counter that has already expired is
-- left alone: settling late, after a period rolled over, adjusts the old period, not the new.
-- Numbers go back to Redis as the strings given or formatted here: Lua would print 1e+15.
--
-- KEYS[i]  the counter of check i, as given to admit_v1
-- ARGV[1]  now, ms          ARGV[2]  reservation id
-- ARGV[3]  per check, space-separated: kind (r|t|p|b), limit, delta, ttl ms (budget; 0: none)
-- returns  one string, per check: the budget counter after the change (micro-USD, reservations in
--          flight included; 0 when absent), or 0 for the other kinds; space-separated. The
--          gateway reports budgets from it (gauges, alerts) without reading them again.
--
-- v2 differs from v1 only in what it returns; the counters are the same, so gateways of both
-- versions can share them during a rolling upgrade.

local WINDOW = 60000
local now = tonumber(ARGV[1])
local member = ARGV[2]
local spec = {}
for word in string.gmatch(ARGV[3], '%S+') do spec[#spec + 1] = word end

local spent = {}
for i, key in ipairs(KEYS) do
  local at = 1 + (i - 1) * 4
  spent[i] = '0'
  local kind, limit, delta = spec[at], tonumber(spec[at + 1]), tonumber(spec[at + 2])
  if (kind == 'r' or kind == 't') and delta ~= 0 and limit > 0 then
    local interval = WINDOW / limit
    local tat = tonumber(redis.call('GET', key) or 0)
    if delta > 0 or tat > now then
      local new_tat = math.max(tat, now) + delta * interval
      if new_tat <= now then
        redis.call('DEL', key)
      else
        local px = string.format('%d', math.ceil(new_tat - now) + 1000)
        redis.call('SET', key, string.format('%.17g', new_tat), 'PX', px)
      end
    end
  elseif kind == 'p' and delta < 0 then
    redis.call('ZREM', key, member)
  elseif kind == 'b' then
    if delta ~= 0 and redis.call('EXISTS', key) == 1 then
      if redis.call('INCRBY', key, spec[at + 2]) < 0 then
        redis.call('SET', key, '0', 'KEEPTTL')
      end
    elseif delta > 0 then
      redis.call('SET', key, spec[at + 2])
      if tonumber(spec[at + 3]) > 0 then redis.call('PEXPIRE', key, spec[at + 3]) end
    end
    spent[i] = redis.call('GET', key) or '0'
  end
end

return table.concat(spent, ' ')
