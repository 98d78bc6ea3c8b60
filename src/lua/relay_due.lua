-- relay_due.lua: move the relays whose retry is due from the retry set back
-- onto the relay stream (src/relay.c calls it every second).
--
-- KEYS[1]  retry set         P:{P}:relay:d    (score: due ms on Redis's clock;
--                                         member: see relay_outcome.lua)
-- KEYS[2]  relays            P:{P}:relay    (stream, consumer group "w")
-- KEYS[3]  dead relays       P:{P}:relay:dlq  (stream)
--
-- ARGV[1]  most members to move in this call (> 0)
-- ARGV[2]  optional: the longest delay a retry is ever given, ms. A member
--          due later than now + ARGV[2] was written before Redis's clock
--          went back: it is due now
--
-- Each due member becomes one entry with the fields c, t, y, i, s, b and a
-- (the attempt it is) on KEYS[2] (created with the consumer group "w" when
-- missing) and is removed from KEYS[1], in due order. A member that does not
-- decode (never written by sesgate) is not lost: it goes onto KEYS[3] with
-- b the member as it is and e "unreadable retry member".
--
-- Returns the number of members moved to KEYS[2].
-- Errors (nothing written): "BADARGS", "WRONGTYPE".
--
-- Atomicity: one atomic step; checks run before the first write.

local rd, rl, rdlq = KEYS[1], KEYS[2], KEYS[3]
local max, longest = tonumber(ARGV[1]), tonumber(ARGV[2] or '')
if max == nil or max < 1 or (ARGV[2] ~= nil and (longest == nil or longest < 0)) then
    return redis.error_reply('BADARGS relay_due: keys rd rl rdlq, args max [longest]')
end
for k, want in pairs({ [rd] = 'zset', [rl] = 'stream', [rdlq] = 'stream' }) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= want then
        return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t .. ', not a ' .. want)
    end
end
if redis.replicate_commands then
    redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local due = redis.call('ZRANGEBYSCORE', rd, '-inf', now, 'LIMIT', 0, max)
if longest ~= nil and #due < max then
    local stepped = redis.call('ZRANGEBYSCORE', rd, '(' .. string.format('%d', now + longest), '+inf',
        'LIMIT', 0, max - #due)
    for _, m in ipairs(stepped) do
        due[#due + 1] = m
    end
end

-- The values of member m ("<length>:<bytes>" eight times), or nil.
local function decode(m)
    local out, pos = {}, 1
    while pos <= #m do
        local colon = string.find(m, ':', pos, true)
        if colon == nil then
            return nil
        end
        local n = tonumber(string.sub(m, pos, colon - 1))
        if n == nil or n < 0 or colon + n > #m then
            return nil
        end
        out[#out + 1] = string.sub(m, colon + 1, colon + n)
        pos = colon + n + 1
    end
    if #out ~= 8 or not string.match(out[8], '^%d+$') then
        return nil
    end
    return out
end

local moved = 0
local fresh = redis.call('EXISTS', rl) == 0
for _, m in ipairs(due) do
    local v = decode(m)
    if v then
        if fresh then
            redis.call('XGROUP', 'CREATE', rl, 'w', '0', 'MKSTREAM')
            fresh = false
        end
        redis.call('XADD', rl, '*', 'c', v[2], 't', v[3], 'y', v[4], 'i', v[5], 's', v[6],
            'b', v[7], 'a', v[8])
        moved = moved + 1
    else
        redis.call('XADD', rdlq, '*', 'c', '', 't', '', 'y', '', 'i', '', 's', '', 'b', m,
            'a', '0', 'e', 'unreadable retry member')
    end
    redis.call('ZREM', rd, m)
end
return moved
