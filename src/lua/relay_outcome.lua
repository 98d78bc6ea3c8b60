-- relay_outcome.lua: record what became of one relay's POST to its
-- client's events_url (src/relay.c), and let go of its entry, in one step.
--
-- KEYS[1]  relays            P:{P}:relay    (stream, consumer group "w"; fields
--                                         c client, t TopicArn, y SNS message
--                                         type, i SNS MessageId, s subscription
--                                         ARN, b the SNS body, a attempt)
-- KEYS[2]  retry set         P:{P}:relay:d    (sorted set: score due ms on Redis's
--                                         clock, member the relay encoded as
--                                         below)
-- KEYS[3]  dead relays       P:{P}:relay:dlq  (stream: the fields of KEYS[1] and
--                                         e, the last error)
--
-- ARGV[1]  the entry id on KEYS[1]
-- ARGV[2]  "done"  delivered (or dropped): the entry is acknowledged and deleted
--          "retry" ARGV[3] is the delay in ms: the relay goes into KEYS[2], due
--                  at Redis's TIME + delay, with attempt a + 1; the entry is
--                  acknowledged and deleted
--          "dead"  ARGV[3] is the last error: the relay goes onto KEYS[3] with
--                  its fields as they are (a: the attempt that failed last,
--                  0 for the first) and e; the entry is acknowledged and deleted
--
-- A member of KEYS[2] is the concatenation of "<length>:<bytes>" for, in
-- this order: the entry id it came from (so that two relays never share a
-- member), c, t, y, i, s, b, a (relay_due.lua reads it).
--
-- An entry no longer on KEYS[1] was finished by another process (which
-- reclaimed it after the lease): nothing is written.
-- Returns 1 when the outcome was recorded, 0 when the entry was gone.
-- Errors (nothing written): "BADARGS", "WRONGTYPE".
--
-- Atomicity: one atomic step; checks run before the first write.

local rl, rd, rdlq = KEYS[1], KEYS[2], KEYS[3]
local id, kind, arg = ARGV[1], ARGV[2], ARGV[3]

if id == nil or not string.match(id, '^%d+%-%d+$') or
    (kind ~= 'done' and kind ~= 'retry' and kind ~= 'dead') or
    (kind == 'retry' and (tonumber(arg or '') == nil or tonumber(arg) < 0)) or
    (kind == 'dead' and arg == nil) then
    return redis.error_reply('BADARGS relay_outcome: keys rl rd rdlq, args id done|retry DELAY|dead ERROR')
end
for k, want in pairs({ [rl] = 'stream', [rd] = 'zset', [rdlq] = 'stream' }) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= want then
        return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t .. ', not a ' .. want)
    end
end

local e = redis.call('XRANGE', rl, id, id)
if #e == 0 then
    return 0
end
local fields = e[1][2]
local function field(name)
    for k = 1, #fields, 2 do
        if fields[k] == name then
            return fields[k + 1]
        end
    end
    return ''
end

if kind == 'retry' then
    if redis.replicate_commands then
        redis.replicate_commands()
    end
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local a = (tonumber(field('a')) or 0) + 1
    local parts = { id, field('c'), field('t'), field('y'), field('i'), field('s'), field('b'),
        string.format('%d', a) }
    for k, v in ipairs(parts) do
        parts[k] = #v .. ':' .. v
    end
    redis.call('ZADD', rd, string.format('%d', now + math.floor(tonumber(arg))), table.concat(parts))
elseif kind == 'dead' then
    local a = field('a')
    redis.call('XADD', rdlq, '*', 'c', field('c'), 't', field('t'), 'y', field('y'),
        'i', field('i'), 's', field('s'), 'b', field('b'), 'a', a ~= '' and a or '0', 'e', arg)
end
redis.call('XACK', rl, 'w', id)
redis.call('XDEL', rl, id)
return 1
