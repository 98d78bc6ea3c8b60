-- control.lua: pause, resume or cancel a batch (sesgate batch
-- pause|resume|cancel, POST /batches/{id}/pause|resume|cancel).
--
-- KEYS[1]  batch hash        P:{P}:b:<id>
-- KEYS[2]  the key prefix    P:{P}:   (not a key itself: the batch's outcome
--          hash o:<id>, held list h:<id>, in-flight set f:<id>, recipient
--          list r:<id>, template t:<id>, delivery states e:<id>, number key n:<n>, its client's
--          stream q:<client> and the stream set qs are this prefix plus
--          those names, in the slot of KEYS[1]; n and client are read from
--          the batch hash)
--
-- ARGV[1]  "pause", "resume" or "cancel"
-- ARGV[2]  status_ttl, ms (completion, as outcome.lua)
-- ARGV[3]  the most held units this call moves or cancels (> 0)
-- ARGV[4]  optional "more": a later step of the same command; the state is
--          not changed, and nothing is done unless the batch is still in the
--          state the command set (a pause in between stops a resume)
--
-- The batch hash's field state: absent or "running" (a batch stored by
-- sesgate 0.1.0 has none: it is running), "paused", "cancelled".
--   pause:  state = paused. Workers run gate.lua right before each send:
--           from now on each unit they reach is held on h:<id> instead
--           ("<index>:<attempt>"), not sent.
--   resume: state = running, and up to ARGV[3] held units go back on the
--           client's stream as entries b <n>, i <index>, a <attempt> (as
--           due.lua writes them; the stream and its group "w" are made again
--           when missing).
--   cancel: state = cancelled, and up to ARGV[3] held units get the outcome
--           "c" (counted in the batch's cancelled counter). Units still on a
--           stream or in the delay set are cancelled by gate.lua when a
--           worker reaches them. A batch is complete when sent + done + dead
--           + cancelled + suppressed == total (suppressed absent: 0): its keys then get status_ttl as in
--           outcome.lua (the template at once when nothing is dead).
-- The caller calls again with "more" while the reply's held count is not 0
-- (resume, cancel), so no call touches more than ARGV[3] units.
-- Repeating a command on a batch that is not complete is allowed and does
-- only what is left (a resume or cancel cut short goes on): the state it
-- answers is the current one.
--
-- Returns {state, in_flight, held}: the state after the call, the number
-- of sends let go by gate.lua whose outcome is not recorded yet (the size
-- of f:<id> at this moment), and the units left on the held list.
-- Errors (nothing written): "BADARGS"; "NOBATCH" when the batch does not
-- exist (expired or never stored); "CANCELLED" for pause or resume of a
-- cancelled batch; "COMPLETE" for pause, resume or cancel of a batch whose
-- every unit has an outcome and that is not cancelled (cancel of a
-- cancelled batch answers its state).
--
-- Atomicity: one atomic step; every check runs before the first write, and
-- no later write can fail except that Redis refuses the first write of a
-- script under OOM (then nothing is written).

local batch, prefix = KEYS[1], KEYS[2]
local cmd, ttl, max, more = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == 'more'
local want = ({ pause = 'paused', resume = 'running', cancel = 'cancelled' })[cmd]

if want == nil or ttl == nil or ttl <= 0 or max == nil or max < 1 or prefix == nil or
    prefix == '' or (ARGV[4] ~= nil and not more) then
    return redis.error_reply('BADARGS control: keys batch prefix, args pause|resume|cancel ' ..
        'status_ttl max [more]')
end
local id = string.match(batch, '^[^{]*{[^}]*}:b:(.+)$')
if id == nil then
    return redis.error_reply('BADARGS control: batch key not shaped P:{P}:b:<id>')
end
local outcome, held, inflight = prefix .. 'o:' .. id, prefix .. 'h:' .. id, prefix .. 'f:' .. id
local list, template = prefix .. 'r:' .. id, prefix .. 't:' .. id

local h = redis.call('HMGET', batch, 'n', 'client', 'state', 'total', 'sent', 'done', 'dead',
    'cancelled', 'suppressed', 'u')
if not h[1] or not h[2] then
    return redis.error_reply('NOBATCH batch ' .. id .. ' not found')
end
local n, client, state = h[1], h[2], h[3] or 'running'
local function count(k) return tonumber(h[k]) or 0 end
local complete = count(5) + count(6) + count(7) + count(8) + count(9) >= count(4)
-- A batch routed to [upstream.U] (field u; absent: [upstream]) queues on
-- that upstream's streams, P:{P}:u:<U>:q:<client> in P:{P}:u:<U>:qs.
local upfx = h[10] and (prefix .. 'u:' .. h[10] .. ':') or prefix
local stream, streams = upfx .. 'q:' .. client, upfx .. 'qs'

local function control_answer()
    return { state, redis.call('SCARD', inflight), redis.call('LLEN', held) }
end

if more then
    if state ~= want then
        return control_answer()
    end
elseif state == 'cancelled' and want ~= 'cancelled' then
    return redis.error_reply('CANCELLED batch ' .. id .. ' is cancelled')
elseif complete and state ~= 'cancelled' then
    return redis.error_reply('COMPLETE batch ' .. id .. ' is complete')
end
local units = redis.call('LRANGE', held, 0, max - 1)
local fresh = false
if want == 'running' and #units > 0 then
    local t = redis.call('TYPE', stream)['ok']
    if t ~= 'none' and t ~= 'stream' then
        return redis.error_reply('WRONGTYPE ' .. stream .. ' holds a ' .. t .. ', not a stream')
    end
    fresh = t == 'none'
end

-- Writes.
if state ~= want then
    redis.call('HSET', batch, 'state', want)
    state = want
end
if #units == 0 or want == 'paused' then
    return control_answer()
end
redis.call('LTRIM', held, #units, -1)
if want == 'running' then
    if fresh then
        redis.call('XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
        redis.call('SADD', streams, stream)
    end
    for _, u in ipairs(units) do
        local i, a = string.match(u, '^(%d+):(%d+)$')
        if i then
            redis.call('XADD', stream, '*', 'b', n, 'i', i, 'a', a)
        end
    end
    return control_answer()
end

local cancelled = 0
for _, u in ipairs(units) do
    local i = string.match(u, '^(%d+):%d+$')
    if i and redis.call('HEXISTS', outcome, i) == 0 then
        redis.call('HSET', outcome, i, 'c')
        cancelled = cancelled + 1
    end
end
if cancelled > 0 then
    local c = redis.call('HINCRBY', batch, 'cancelled', cancelled)
    local dead = count(7)
    if count(5) + count(6) + dead + c + count(9) >= count(4) then
        if dead == 0 then
            redis.call('DEL', template)
            redis.call('HDEL', batch, 'riders')
        else
            redis.call('PEXPIRE', template, ttl)
        end
        for _, key in ipairs({ prefix .. 'n:' .. n, list, batch, outcome, held, inflight,
            prefix .. 'e:' .. id }) do
            redis.call('PEXPIRE', key, ttl)
        end
    end
end
return control_answer()
