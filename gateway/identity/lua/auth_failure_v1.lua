-- auth_failure_v1: count one failed authentication against a bucket (a client address, a key
-- prefix, a user name) and say whether it was within the allowance.
--
-- GCRA, as the limiter's admit_v1.lua: the key holds the "theoretical arrival time" (TAT, ms on
-- the gateway's clock). Each failure moves it `refill` ms on; a failure that would put it more
-- than `burst * refill` ms ahead of now is over the allowance and is not stored, so a client
-- held back gets one more try every `refill` ms and no more. The key's TTL only cleans up.
--
-- KEYS[1]  the bucket
-- ARGV[1]  now, ms          ARGV[2]  refill, ms          ARGV[3]  burst
-- returns  0 within the allowance, else the ms until the next failure would be

local now = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
    tat = now
end
local next_tat = tat + refill
local over = next_tat - now - burst * refill
if over > 0 then
    return over
end
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return 0
