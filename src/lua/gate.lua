-- gate.lua: right before copies of one batch go upstream (their limiter
-- reservations' time came, their requests not started), say for each
-- whether it may be sent, by the batch's state (pause, resume and cancel:
-- control.lua).
--
-- KEYS[1]  batch hash        P:{P}:b:<id>  (field state: absent or
--                                           "running", "paused", "cancelled")
-- KEYS[2]  outcome hash      P:{P}:o:<id>
-- KEYS[3]  queue stream      P:{P}:q:<client>  (the entries'; group "w")
-- KEYS[4]  held list         P:{P}:h:<id>  ("<index>:<attempt>" of each unit
--                                           held while the batch is paused)
-- KEYS[5]  in-flight set     P:{P}:f:<id>  (indexes whose sends were let go
--                                           and have no outcome yet)
-- KEYS[6]  recipient list    P:{P}:r:<id>
-- KEYS[7]  template          P:{P}:t:<id>
-- KEYS[8]  number key        P:{P}:n:<n>
-- KEYS[9]  delivery states   P:{P}:e:<id>  (optional)
-- (KEYS[6..9] are what completion sets a time to live on, as outcome.lua.)
-- Every key carries the same hash tag {P}, so one call touches one slot.
--
-- ARGV[1]  status_ttl, ms
-- ARGV[2..] (stream entry id, recipient index, attempt) triples, one per
--          copy, every one of this batch
--
-- Returns one code per triple, in order:
--   "go"        send it: the index is added to the in-flight set (outcome.lua
--               removes it when it records the outcome)
--   "replay"    the index already has an outcome: the entry was acknowledged
--               and deleted; do not send
--   "paused"    the batch is paused: the entry was acknowledged and deleted
--               and "<index>:<attempt>" pushed to the held list (resume puts
--               it back on the stream); do not send. An entry no longer
--               pending in the group (another worker handled it) is not held
--               twice
--   "cancelled" the batch is cancelled: the outcome "c" was recorded, the
--               batch's cancelled counter bumped, the entry acknowledged and
--               deleted, and completion checked; do not send
--
-- Completion: when sent + done + dead + cancelled + suppressed == total, as outcome.lua:
-- the batch hash, outcomes, recipient list, number key, held list and
-- in-flight set get status_ttl; the template and riders go at once when no
-- recipient is dead, else they get status_ttl.
--
-- Errors (nothing written): "BADARGS" for malformed arguments, "NOBATCH"
-- when the batch hash does not exist (the worker acknowledges the entries).
--
-- Atomicity: one atomic step; every check runs before the first write, and
-- no later write can fail except that Redis refuses the first write of a
-- script under OOM (then nothing is written).

local batch, outcome, stream, held, inflight, list, template, number =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local events = KEYS[9]
local ttl = tonumber(ARGV[1])

if ttl == nil or ttl <= 0 or #ARGV < 4 or (#ARGV - 1) % 3 ~= 0 or number == nil then
    return redis.error_reply('BADARGS gate: 8 keys, args status_ttl (entry index attempt)...')
end
for k = 2, #ARGV, 3 do
    if ARGV[k] == '' or not string.match(ARGV[k + 1], '^%d+$') or
        not string.match(ARGV[k + 2], '^%d+$') then
        return redis.error_reply('BADARGS gate: entry index attempt')
    end
end
if redis.call('EXISTS', batch) == 0 then
    return redis.error_reply('NOBATCH the batch hash ' .. batch .. ' does not exist')
end

local state = redis.call('HGET', batch, 'state') or 'running'
local codes, cancelled = {}, 0
for k = 2, #ARGV, 3 do
    local entry, index, attempt = ARGV[k], ARGV[k + 1], ARGV[k + 2]
    if redis.call('HEXISTS', outcome, index) == 1 then
        redis.call('XACK', stream, 'w', entry)
        redis.call('XDEL', stream, entry)
        codes[#codes + 1] = 'replay'
    elseif state == 'paused' then
        if redis.call('XACK', stream, 'w', entry) == 1 then
            redis.call('RPUSH', held, index .. ':' .. attempt)
        end
        redis.call('XDEL', stream, entry)
        codes[#codes + 1] = 'paused'
    elseif state == 'cancelled' then
        redis.call('HSET', outcome, index, 'c')
        cancelled = cancelled + 1
        redis.call('XACK', stream, 'w', entry)
        redis.call('XDEL', stream, entry)
        codes[#codes + 1] = 'cancelled'
    else
        redis.call('SADD', inflight, index)
        codes[#codes + 1] = 'go'
    end
end

if cancelled > 0 then
    redis.call('HINCRBY', batch, 'cancelled', cancelled)
    local c = redis.call('HMGET', batch, 'total', 'sent', 'done', 'dead', 'cancelled', 'suppressed')
    local total, dead = tonumber(c[1]) or 0, tonumber(c[4]) or 0
    if (tonumber(c[2]) or 0) + (tonumber(c[3]) or 0) + dead + (tonumber(c[5]) or 0) +
        (tonumber(c[6]) or 0) >= total then
        if dead == 0 then
            redis.call('DEL', template)
            redis.call('HDEL', batch, 'riders')
        else
            redis.call('PEXPIRE', template, ttl)
        end
        for _, key in ipairs({ number, list, batch, outcome, held, inflight }) do
            redis.call('PEXPIRE', key, ttl)
        end
        if events then
            redis.call('PEXPIRE', events, ttl)
        end
    end
end
return codes
