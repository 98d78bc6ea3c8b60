-- due.lua: move the retries that are due from the delay set back onto the
-- queue stream.
--
-- KEYS[1]  delay set         P:{P}:d   (score: due ms, member
--                                       "<n>:<index>:<attempt>", n the
--                                       batch's number)
-- KEYS[2]  queue stream      P:{P}:q
-- Both keys carry the same hash tag {P}.
--
-- ARGV[1]  now, ms since the epoch (members with a score <= now are due)
-- ARGV[2]  most members to move in this call (> 0)
--
-- Each due member becomes one stream entry with the fields b <n>,
-- i <index> and a <attempt> (the retry number the worker passes to
-- backoff), and is removed from the delay set. Members are taken in due
-- order; the batch part may itself contain ':' (index and attempt are the
-- last two fields). A member that does not parse is removed and not queued.
--
-- Returns the number of entries moved to the stream.
-- Errors (nothing written): "BADARGS", "WRONGTYPE".
--
-- Atomicity: one atomic step; checks run before the first write, and no
-- later write can fail except that Redis refuses the first write of a
-- script under OOM (then nothing is moved, and the next call tries again).

local delay, stream = KEYS[1], KEYS[2]
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])

if now == nil or max == nil or max < 1 then
    return redis.error_reply('BADARGS due: now max')
end
local t = redis.call('TYPE', stream)['ok']
if t ~= 'none' and t ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. stream .. ' holds a ' .. t .. ', not a stream')
end

local due = redis.call('ZRANGEBYSCORE', delay, '-inf', now, 'LIMIT', 0, max)
local moved = 0
for _, m in ipairs(due) do
    local b, i, a = string.match(m, '^(.+):(%d+):(%d+)$')
    if b ~= nil then
        redis.call('XADD', stream, '*', 'b', b, 'i', i, 'a', a)
        moved = moved + 1
    end
    redis.call('ZREM', delay, m)
end
return moved
