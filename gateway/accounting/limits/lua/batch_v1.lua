-- batch_v1: the admit and settle calls one worker made in one event-loop iteration, run in one
-- script call, in the order they were made. At concurrency the limiter's cost is per call more
-- than per check (a command to encode, write, parse and answer), so many requests' calls share one.
--
-- The gateway builds the script it loads from this file: `admit_v1` and `settle_v2` below are
-- those scripts' files, each wrapped as a function of (KEYS, ARGV), so each call in a batch runs
-- exactly the code it runs alone. Scripts are atomic: no other client's command runs between two
-- calls of a batch, nor inside one, so limits stay exact, and a settle sent before an admit is
-- applied before it, as on the connection itself.
--
-- KEYS       every call's keys, call after call
-- ARGV[1]    the number of calls
-- then, per call: its script (a: admit_v1, s: settle_v2), its number of keys, its number of
--            arguments, and its arguments
-- returns    an array: each call's reply, in order (an error reply for a call that failed)

local calls = {a = admit_v1, s = settle_v2}
local out = {}
local k, a = 1, 2
for i = 1, tonumber(ARGV[1]) do
  local call = calls[ARGV[a]]
  local nkeys, nargs = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local keys, args = {}, {}
  for j = 1, nkeys do keys[j] = KEYS[k + j - 1] end
  for j = 1, nargs do args[j] = ARGV[a + j - 1] end
  k, a = k + nkeys, a + nargs
  out[i] = call(keys, args)
end
return out
