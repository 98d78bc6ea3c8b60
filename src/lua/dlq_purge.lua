-- dlq_purge.lua: delete every dead letter (sesgate dlq purge).
--
-- KEYS[1] the dead-letter stream. No ARGV.
-- Returns how many entries it held.
-- Atomicity: the count and the delete are one step. UNLINK: a long
-- dead-letter stream is freed in the background, not while Redis waits.

local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 0 end
if t ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. t .. ', not a stream')
end
local n = redis.call('XLEN', KEYS[1])
redis.call('UNLINK', KEYS[1])
return n
