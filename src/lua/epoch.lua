-- epoch.lua: notice that Redis lost sesgate's data (restarted empty,
-- flushed, failed over to a replica that never had it). Every sesgate
-- process keeps the value of an epoch key it saw and checks it every
-- second; the key goes away with everything else.
--
-- KEYS[1]  epoch             P:{P}:epoch  (string)
--
-- ARGV[1]  the epoch this process saw last, or "" before its first check
-- ARGV[2]  a fresh epoch value (random), stored when the key is missing
--
-- Returns {state, epoch}: state 0 when the key holds ARGV[1] (or ARGV[1]
-- is "": the process starts, and the epoch is whatever Redis holds or,
-- when missing, ARGV[2], stored); 1 when the key was missing and ARGV[1]
-- was not "": the data is gone, ARGV[2] is stored as the new epoch; 2 when
-- the key holds another value than ARGV[1]: the data went away and another
-- process noticed first. epoch is the value now stored.
-- Errors: "BADARGS" without a fresh value.
--
-- Atomicity: one GET and at most one SET, atomic.

local key, seen, fresh = KEYS[1], ARGV[1], ARGV[2]
if seen == nil or fresh == nil or fresh == '' then
    return redis.error_reply('BADARGS epoch: seen fresh')
end
local cur = redis.call('GET', key)
if cur then
    if seen == '' or cur == seen then
        return { 0, cur }
    end
    return { 2, cur }
end
redis.call('SET', key, fresh)
if seen == '' then
    return { 0, fresh }
end
return { 1, fresh }
