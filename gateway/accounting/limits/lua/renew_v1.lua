-- renew_v1: extend the leases of parallel slots whose requests are still running.
--
-- admit_v1 gives a slot a short lease (now + lease ms as its score), so that a process which
-- dies holding slots frees them within one lease. A live process calls this for all of its
-- requests in flight at once, every third of a lease. Only members still in the set are renewed:
-- a slot already given back (settled) or pruned (its lease ran out and an admission removed it)
-- is never brought back. A member whose lease ran out but which no admission has pruned yet is
-- renewed: no admission has counted its slot as free, so the set's count stays exact. A lease is
-- never shortened (a process whose clock lags another's).
--
-- KEYS[i]    a parallel-slot set (`...:par`), as given to admit_v1 (on a cluster: one slot per call)
-- ARGV[1]    now, ms          ARGV[2]  lease, ms
-- ARGV[2+i]  the reservation ids held in KEYS[i], space-separated
-- returns    one string: the ids of the slots not found, space-separated (normally empty)

local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local until_ms = now + lease
local score = string.format('%d', until_ms)
local missing = {}

for i, key in ipairs(KEYS) do
  local found = false
  for member in string.gmatch(ARGV[2 + i], '%S+') do
    local current = redis.call('ZSCORE', key, member)
    if current then
      found = true
      if tonumber(current) < until_ms then redis.call('ZADD', key, score, member) end
    else
      missing[#missing + 1] = member
    end
  end
  if found and redis.call('PTTL', key) < lease then redis.call('PEXPIRE', key, ARGV[2]) end
end

return table.concat(missing, ' ')
