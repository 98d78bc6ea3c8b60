-- due.lua: move the retries that are due from the delay set back onto the
-- queue stream of their batch's client.
--
-- KEYS[1]  delay set         P:{P}:d   (score: due ms, member
--                                       "<n>:<index>:<attempt>", n the
--                                       batch's number)
-- KEYS[2]  queue streams     P:{P}:qs  (set of stream keys)
-- KEYS[3]  the key prefix    P:{P}:    (not a key itself: the number key
--          P:{P}:n:<n>, the batch hash P:{P}:b:<id> and the client's
--          stream P:{P}:q:<client> are this prefix plus "n:<n>", "b:<id>",
--          "q:<client>", in the slot of KEYS[1]; which batches a call
--          touches is only known from the members)
--
-- ARGV[1]  now, ms since the epoch (members with a score <= now are due),
--          or "" for the server's TIME: due times written on Redis's clock
--          (one clock for every process) are then immune to a step of any
--          sesgate host's wall clock, which would otherwise hold the
--          retries written while it was ahead for the length of the step
-- ARGV[2]  most members to move in this call (> 0)
-- ARGV[3]  optional: the longest delay a retry is ever given, ms. A member
--          due later than now + ARGV[3] was written before Redis's clock
--          went back (by more than the difference): it is due now, rather
--          than held for the length of the step
--
-- Each due member becomes one entry with the fields b <n>, i <index> and
-- a <attempt> (the retry number the worker passes to backoff) on the
-- stream of the batch's client (created with the consumer group "w" and
-- added to KEYS[2] when missing); a batch whose hash has "u" (routed to
-- [upstream.U]) goes to P:{P}:u:<U>:q:<client>, added to P:{P}:u:<U>:qs, and is removed from the delay set.
-- Members are taken in due order; the batch part may itself contain ':'
-- (index and attempt are the last two fields). A member that does not
-- parse, or whose batch is gone (expired), is removed and not queued.
--
-- Returns the number of entries moved to the stream.
-- Errors (nothing written): "BADARGS", "WRONGTYPE".
--
-- Atomicity: one atomic step; checks run before the first write, and no
-- later write can fail except that Redis refuses the first write of a
-- script under OOM (then nothing is moved, and the next call tries again).

local delay, streams, prefix = KEYS[1], KEYS[2], KEYS[3]
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[1] == '' then
    if redis.replicate_commands then
        redis.replicate_commands()
    end
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local longest = tonumber(ARGV[3] or '')
if now == nil or max == nil or max < 1 or prefix == nil or prefix == '' or
    (ARGV[3] ~= nil and (longest == nil or longest < 0)) then
    return redis.error_reply('BADARGS due: keys delay streams prefix, args now max [longest]')
end

local function due_type(key, want)
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= want then
        return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want)
    end
    return nil
end

local err = due_type(streams, 'set')
if err then
    return err
end

-- Checks first: the stream of every due member (false: drop the member).
local due = redis.call('ZRANGEBYSCORE', delay, '-inf', now, 'LIMIT', 0, max)
if longest ~= nil and #due < max then
    local stepped = redis.call('ZRANGEBYSCORE', delay, '(' .. string.format('%d', now + longest), '+inf',
        'LIMIT', 0, max - #due)
    for _, m in ipairs(stepped) do
        due[#due + 1] = m
    end
end
local plan, fresh = {}, {}
for k, m in ipairs(due) do
    local b, i, a = string.match(m, '^(.+):(%d+):(%d+)$')
    plan[k] = false
    if b ~= nil then
        local id = redis.call('GET', prefix .. 'n:' .. b)
        local h = id and redis.call('HMGET', prefix .. 'b:' .. id, 'client', 'u')
        local client = h and h[1]
        if client then
            -- a batch routed to [upstream.U] (field u) goes back to that
            -- upstream's stream and set
            local set = h[2] and (prefix .. 'u:' .. h[2] .. ':qs') or streams
            local stream = (h[2] and (prefix .. 'u:' .. h[2] .. ':') or prefix) .. 'q:' .. client
            err = due_type(stream, 'stream') or due_type(set, 'set')
            if err then
                return err
            end
            if fresh[stream] == nil then
                fresh[stream] = redis.call('EXISTS', stream) == 0
            end
            plan[k] = { stream, b, i, a, set }
        end
    end
end

local moved = 0
for k, m in ipairs(due) do
    local p = plan[k]
    if p then
        if fresh[p[1]] then
            redis.call('XGROUP', 'CREATE', p[1], 'w', '0', 'MKSTREAM')
            redis.call('SADD', p[5], p[1])
            fresh[p[1]] = false
        end
        redis.call('XADD', p[1], '*', 'b', p[2], 'i', p[3], 'a', p[4])
        moved = moved + 1
    end
    redis.call('ZREM', delay, m)
end
return moved
