-- dlq_retry.lua: send dead letters again: move them from the dead-letter
-- stream back onto the queue stream of their batch's client.
--
-- KEYS[1]  dead letters      P:{P}:dlq
-- KEYS[2]  queue streams     P:{P}:qs  (set of stream keys)
-- KEYS[3]  the key prefix    P:{P}:   (not a key itself: the batch keys
--          P:{P}:b:<id>, P:{P}:o:<id>, P:{P}:r:<id>, P:{P}:t:<id>,
--          P:{P}:e:<id>, the number key P:{P}:n:<n> and the client's stream
--          P:{P}:q:<client> of each dead letter are this prefix plus
--          "b:<id>", "o:<id>", "r:<id>", "t:<id>", "e:<id>", "n:<n>",
--          "q:<client>", so they share the hash
--          tag {P} and the slot of KEYS[1] and KEYS[2]; which batches a call
--          touches is only known from the dead letters)
--
-- ARGV[1]  most dead letters to move when no id is given (> 0)
-- ARGV[2..] dead-letter entry ids to move; none: the oldest ones, up to
--          ARGV[1] (call again until it returns 0 to move them all); or
--          ARGV[2] = "from:<start>" (start "-", or "(<id>" for after <id>):
--          look at up to ARGV[1] dead letters from there, whether they move
--          or not, and return where to go on (a call on a long stream of
--          letters that stay then still ends after ARGV[1] of them)
--
-- For each dead letter (fields b, i) whose batch still holds its template:
-- the outcome of the index is removed, the batch's dead counter goes down
-- by one, the time to live of the batch hash, the outcome hash and the
-- recipient list, the template, the delivery states and the number key is removed (the batch is
-- in progress again; outcome.lua sets it again when the batch completes),
-- an entry b <n>, i <index>, a 0 is added to the client's queue stream
-- (attempts start over; the stream is created with the consumer group "w"
-- and added to KEYS[2] when missing) and the dead letter is deleted. outcome.lua keeps the
-- template of a batch while it has dead recipients, until status_ttl.
-- A dead letter whose batch has expired (status_ttl passed) stays where it
-- is and is not counted; an operator purges it. A dead letter whose
-- recipient no longer has a dead outcome (already retried) is deleted and
-- not counted. An id that is not in the dead-letter stream is ignored.
--
-- Returns the number of dead letters moved to the queue; with "from:",
-- {moved, the next start, or "" when the stream was read to its end}.
-- Errors (nothing written): "BADARGS", "WRONGTYPE".
--
-- Atomicity: one atomic step; checks run before the first write, and no
-- later write can fail except that Redis refuses the first write of a
-- script under OOM (then nothing is moved).

local dlq, streams, prefix = KEYS[1], KEYS[2], KEYS[3]
local max = tonumber(ARGV[1])

if max == nil or max < 1 or prefix == nil or prefix == '' then
    return redis.error_reply('BADARGS dlq_retry: keys dlq streams prefix, args max [id...]')
end
local from = ARGV[2] and string.match(ARGV[2], '^from:(.*)$')
if from and not (#ARGV == 2 and (from == '-' or string.match(from, '^%(%d+%-%d+$'))) then
    return redis.error_reply('BADARGS dlq_retry: from:- or from:(<id>, alone')
end
for n = 2, #ARGV do
    if not from and not string.match(ARGV[n], '^%d+%-%d+$') then
        return redis.error_reply('BADARGS dlq_retry: not a stream entry id: ' .. ARGV[n])
    end
end
for k, want in pairs({ [dlq] = 'stream', [streams] = 'set' }) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= want then
        return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t .. ', not a ' .. want)
    end
end

-- Field value of a stream entry's flat field list.
local function dlq_field(fields, name)
    for k = 1, #fields, 2 do
        if fields[k] == name then
            return fields[k + 1]
        end
    end
    return nil
end

-- Move one dead letter; returns 1 when it went back to the queue.
local function dlq_move(eid, fields)
    local b, i = dlq_field(fields, 'b'), dlq_field(fields, 'i')
    if b == nil or i == nil then
        return 0
    end
    local batch, outcome, list = prefix .. 'b:' .. b, prefix .. 'o:' .. b, prefix .. 'r:' .. b
    local template = prefix .. 't:' .. b
    local n, client, up = unpack(redis.call('HMGET', batch, 'n', 'client', 'u'))
    if not n or not client or redis.call('EXISTS', template) == 0 or
        redis.call('EXISTS', list) == 0 then
        return 0
    end
    -- a batch routed to [upstream.U] (field u) goes back to its streams
    local upfx = up and (prefix .. 'u:' .. up .. ':') or prefix
    local stream, set = upfx .. 'q:' .. client, up and (upfx .. 'qs') or streams
    local t = redis.call('TYPE', stream)['ok']
    if t ~= 'none' and t ~= 'stream' then
        return 0 -- left in place: not a stream an operator could read from
    end
    local o = redis.call('HGET', outcome, i)
    if not o or string.sub(o, 1, 2) ~= 'f ' then
        redis.call('XDEL', dlq, eid)
        return 0
    end
    if t == 'none' then
        redis.call('XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
        redis.call('SADD', set, stream)
    end
    redis.call('XADD', stream, '*', 'b', n, 'i', i, 'a', 0)
    redis.call('HDEL', outcome, i)
    redis.call('HINCRBY', batch, 'dead', -1)
    redis.call('PERSIST', batch)
    redis.call('PERSIST', outcome)
    redis.call('PERSIST', list)
    redis.call('PERSIST', template)
    redis.call('PERSIST', prefix .. 'n:' .. n)
    redis.call('PERSIST', prefix .. 'e:' .. b)
    redis.call('XDEL', dlq, eid)
    return 1
end

local moved = 0
if from then
    local page = redis.call('XRANGE', dlq, from, '+', 'COUNT', max)
    for _, e in ipairs(page) do
        moved = moved + dlq_move(e[1], e[2])
    end
    if #page < max then
        return { moved, '' }
    end
    return { moved, '(' .. page[#page][1] }
end
if #ARGV > 1 then
    for n = 2, #ARGV do
        local e = redis.call('XRANGE', dlq, ARGV[n], ARGV[n])
        if #e == 1 then
            moved = moved + dlq_move(e[1][1], e[1][2])
        end
    end
    return moved
end

local start = '-'
while moved < max do
    local page = redis.call('XRANGE', dlq, start, '+', 'COUNT', 100)
    if #page == 0 then
        break
    end
    for _, e in ipairs(page) do
        if moved < max then
            moved = moved + dlq_move(e[1], e[2])
        end
    end
    start = '(' .. page[#page][1]
end
return moved
