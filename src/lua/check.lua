-- check.lua: before sending a stream entry, acknowledge it instead when its
-- recipient already has an outcome (an entry reclaimed with XAUTOCLAIM from
-- a worker that recorded the outcome but crashed before, or lost the race
-- to, the acknowledgement).
--
-- KEYS[1]  outcome hash      P:{P}:o:<id>
-- KEYS[2]  queue stream      P:{P}:q:<client>  (the entry's; group "w")
-- Both keys carry the same hash tag {P}.
--
-- ARGV[1]  stream entry id
-- ARGV[2]  recipient index
--
-- Returns 1 when an outcome exists (the entry was acknowledged and deleted:
-- do not send it), 0 when there is none (send it, then call outcome.lua).
--
-- Atomicity: the check and the acknowledgement run as one atomic step;
-- XACK and XDEL only free memory, so they cannot fail half way.

local outcome, stream = KEYS[1], KEYS[2]
local entry, index = ARGV[1], ARGV[2]

if entry == nil or entry == '' or tonumber(index) == nil then
    return redis.error_reply('BADARGS check: entry index')
end
if redis.call('HEXISTS', outcome, index) == 0 then
    return 0
end
redis.call('XACK', stream, 'w', entry)
redis.call('XDEL', stream, entry)
return 1
