-- relay_retry.lua: send dead relays again (sesgate relay retry): move them
-- from the dead-relay stream back onto the relay stream, attempts from 0.
--
-- KEYS[1]  dead relays       P:{P}:relay:dlq  (stream: fields c t y i s b a e)
-- KEYS[2]  relays            P:{P}:relay    (stream, consumer group "w")
--
-- ARGV[1]  most dead relays to look at when no id is given (> 0)
-- ARGV[2..] entry ids of KEYS[1] to move; or ARGV[2] = "from:<start>"
--          (start "-", or "(<id>" for after <id>): move up to ARGV[1] dead
--          relays from there and return where to go on
--
-- Each dead relay becomes an entry c, t, y, i, s, b, a 0 on KEYS[2]
-- (created with the group "w" when missing) and is deleted from KEYS[1].
-- An id that is not on KEYS[1] is ignored.
--
-- Returns the number moved; with "from:", {moved, the next start, or ""
-- when KEYS[1] was read to its end}.
-- Errors (nothing written): "BADARGS", "WRONGTYPE".
--
-- Atomicity: one atomic step; checks run before the first write.

local rdlq, rl = KEYS[1], KEYS[2]
local max = tonumber(ARGV[1])
if max == nil or max < 1 then
    return redis.error_reply('BADARGS relay_retry: keys rdlq rl, args max [id...|from:START]')
end
local from = ARGV[2] and string.match(ARGV[2], '^from:(.*)$')
if from and not (#ARGV == 2 and (from == '-' or string.match(from, '^%(%d+%-%d+$'))) then
    return redis.error_reply('BADARGS relay_retry: from:- or from:(<id>, alone')
end
for n = 2, #ARGV do
    if not from and not string.match(ARGV[n], '^%d+%-%d+$') then
        return redis.error_reply('BADARGS relay_retry: not a stream entry id: ' .. ARGV[n])
    end
end
for k, want in pairs({ [rdlq] = 'stream', [rl] = 'stream' }) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= want then
        return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t .. ', not a ' .. want)
    end
end

local fresh = redis.call('EXISTS', rl) == 0
local function move(eid, fields)
    local v = {}
    for k = 1, #fields, 2 do
        v[fields[k]] = fields[k + 1]
    end
    if fresh then
        redis.call('XGROUP', 'CREATE', rl, 'w', '0', 'MKSTREAM')
        fresh = false
    end
    redis.call('XADD', rl, '*', 'c', v.c or '', 't', v.t or '', 'y', v.y or '', 'i', v.i or '',
        's', v.s or '', 'b', v.b or '', 'a', '0')
    redis.call('XDEL', rdlq, eid)
    return 1
end

local moved = 0
if from then
    local page = redis.call('XRANGE', rdlq, from, '+', 'COUNT', max)
    for _, e in ipairs(page) do
        moved = moved + move(e[1], e[2])
    end
    if #page < max then
        return { moved, '' }
    end
    return { moved, '(' .. page[#page][1] }
end
for n = 2, #ARGV do
    local e = redis.call('XRANGE', rdlq, ARGV[n], ARGV[n])
    if #e == 1 then
        moved = moved + move(e[1][1], e[1][2])
    end
end
return moved
