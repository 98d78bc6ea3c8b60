-- outcome.lua: record the outcome of one queued send and acknowledge its
-- stream entry, in one step.
--
-- KEYS[1]  batch hash        P:{P}:b:<id>
-- KEYS[2]  outcome hash      P:{P}:o:<id>
-- KEYS[3]  queue stream      P:{P}:q:<client>  (the entry's; group "w")
-- KEYS[4]  delay set         P:{P}:d
-- KEYS[5]  dead letters      P:{P}:dlq
-- KEYS[6]  recipient list    P:{P}:r:<id>
-- KEYS[7]  template          P:{P}:t:<id>
-- KEYS[8]  number key        P:{P}:n:<n>  (n: the batch's number, the b of
--                                           its stream entries)
-- KEYS[9]  in-flight set     P:{P}:f:<id>  (optional: the index leaves it,
--                                           whatever the kind; gate.lua
--                                           added it)
-- KEYS[10] held list         P:{P}:h:<id>  (optional: gets status_ttl at
--                                           completion)
-- KEYS[11] delivery states   P:{P}:e:<id>  (optional: gets status_ttl at
--                                           completion; events.lua writes it)
-- KEYS[12] MessageId index   P:{P}:m:<MessageId>  (optional, sent only: the
--                                           key of the MessageId SES gave
--                                           this copy, written with the
--                                           index TTL)
-- Every key carries the same hash tag {P}, so one call touches one slot.
--
-- ARGV[1]  stream entry id (the entry being acknowledged)
-- ARGV[2]  recipient index
-- ARGV[3]  kind, followed by its arguments, and then status_ttl (ms):
--   sent  <message id> [<index_ttl>]     <status_ttl>   the copy was sent
--         (the message id may be followed by a note after a space; with
--         KEYS[12] and an index_ttl > 0 (ms), KEYS[12] is set to
--         "<client>\t<batch id>\t<index>" with that time to live, for the
--         SES events that name the MessageId: also on a replay, since a
--         copy sent twice has two MessageIds; 0 or absent: not indexed)
--   retry <due ms> <attempt>             <status_ttl>   try again at due
--         (due is ms since the epoch, or "+<ms>": that long after the
--         server's TIME, so that due times are on Redis's clock, one clock
--         for every process, whatever a sesgate host's wall clock says)
--   dead  <code> <message> <attempt>     <status_ttl>   permanent failure
--   done                                 <status_ttl>   nothing to send
--   suppressed                           <status_ttl>   skipped: every
--         recipient of the unit is on the suppression list ({P}:sup)
--
-- What each kind does, besides XACK and XDEL of the entry:
--   sent:  outcome[index] = "s <message id>", batch.sent += 1
--   retry: ZADD delay <due> "<n>:<index>:<attempt>" (due.lua puts it
--          back on the client's stream), batch.failed += 1 (failed tries so far);
--          no outcome is recorded
--   dead:  outcome[index] = "f <code> <message>", batch.dead += 1, and an
--          entry on the dead-letter stream with fields b, i, code, message,
--          attempts
--   done:  outcome[index] = "d", batch.done += 1
--   suppressed: outcome[index] = "x", batch.suppressed += 1 (no dead
--          letter; the unit took no rate)
--
-- Idempotent: when the outcome hash already holds the index (an entry
-- reclaimed with XAUTOCLAIM after its outcome was recorded), the entry is
-- only acknowledged and deleted, and 0 is returned. A retry whose entry is
-- no longer pending in the group (another worker acknowledged it first) is
-- dropped the same way. A worker calls check.lua before sending a reclaimed
-- entry, so an entry with an outcome is never sent twice.
--
-- Completion: when sent + done + dead + cancelled + suppressed == total
-- (cancelled: units gate.lua or control.lua recorded as "c"; a hash
-- without suppressed, as 0.1.0 stored it, counts 0), the batch hash, the
-- outcome hash, the recipient list (the batch status: who got which
-- MessageId or error), the number key, the in-flight set, the held list
-- and the delivery states get status_ttl as their time to live. When no
-- recipient is dead the template and the riders are removed at once; while
-- dead letters remain they are kept (until status_ttl) so dlq_retry.lua can
-- send them again.
--
-- Returns 1 when the outcome was recorded, 0 for a replay.
-- Errors (nothing written): "BADARGS" for a malformed argument,
-- "NOBATCH" when the batch hash does not exist (expired or never stored).
--
-- Atomicity: Redis runs the script atomically; it does not roll back
-- earlier writes on a later error, so every check runs before the first
-- write and no later write can fail except for memory (Redis refuses only
-- the first write of a script under OOM: then nothing is written).

local batch, outcome, stream, delay, dlq, list, template, number =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local inflight, held, events, mkey = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local entry, index, kind = ARGV[1], ARGV[2], ARGV[3]
local nargs = { sent = 5, retry = 6, dead = 7, done = 4, suppressed = 4 }

if nargs[kind] == nil or (#ARGV ~= nargs[kind] and not (kind == 'sent' and #ARGV == 6)) or
    tonumber(index) == nil or entry == nil or entry == '' then
    return redis.error_reply('BADARGS outcome: entry index sent|retry|dead|done|suppressed ... status_ttl')
end
local ttl = tonumber(ARGV[#ARGV])
if ttl == nil or ttl <= 0 then
    return redis.error_reply('BADARGS outcome: status_ttl must be a positive number of ms')
end
local ittl = 0
if kind == 'sent' and #ARGV == 6 then
    ittl = tonumber(ARGV[5])
    if ittl == nil or ittl < 0 or ittl ~= math.floor(ittl) then
        return redis.error_reply('BADARGS outcome: index_ttl must be 0 or a number of ms')
    end
end
local due, after
if kind == 'retry' and string.sub(ARGV[4], 1, 1) == '+' then
    after = string.match(ARGV[4], '^%+(%d+)$')
elseif kind == 'retry' then
    due = tonumber(ARGV[4])
end
if kind == 'retry' and ((due == nil and after == nil) or tonumber(ARGV[5]) == nil) then
    return redis.error_reply('BADARGS outcome: retry <due ms>|+<delay ms> <attempt>')
end
if after then
    if redis.replicate_commands then
        redis.replicate_commands()
    end
    local t = redis.call('TIME')
    due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(after)
end
if kind == 'dead' and tonumber(ARGV[6]) == nil then
    return redis.error_reply('BADARGS outcome: dead <code> <message> <attempt>')
end
-- The batch id is what follows "}:b:" in the batch key.
local id = string.match(batch, '^[^{]*{[^}]*}:b:(.+)$')
if id == nil then
    return redis.error_reply('BADARGS outcome: batch key not shaped P:{P}:b:<id>')
end

local function outcome_ack()
    local n = redis.call('XACK', stream, 'w', entry)
    redis.call('XDEL', stream, entry)
    return n
end

if redis.call('HEXISTS', outcome, index) == 0 and redis.call('EXISTS', batch) == 0 then
    return redis.error_reply('NOBATCH the batch hash ' .. batch .. ' does not exist')
end
if inflight then
    redis.call('SREM', inflight, index)
end
-- The MessageId -> (client, batch, unit) index, for the events SES sends
-- about it.
if kind == 'sent' and mkey and ittl > 0 then
    local client = redis.call('HGET', batch, 'client')
    if client then
        redis.call('SET', mkey, client .. '\t' .. id .. '\t' .. index, 'PX', ittl)
    end
end
if redis.call('HEXISTS', outcome, index) == 1 then
    outcome_ack()
    return 0
end

if kind == 'retry' then
    if outcome_ack() == 0 then
        return 0
    end
    local n = redis.call('HGET', batch, 'n') or id
    redis.call('ZADD', delay, string.format('%d', due), n .. ':' .. index .. ':' .. ARGV[5])
    redis.call('HINCRBY', batch, 'failed', 1)
    return 1
end

if kind == 'sent' then
    redis.call('HSET', outcome, index, 's ' .. ARGV[4])
    redis.call('HINCRBY', batch, 'sent', 1)
elseif kind == 'done' then
    redis.call('HSET', outcome, index, 'd')
    redis.call('HINCRBY', batch, 'done', 1)
elseif kind == 'suppressed' then
    redis.call('HSET', outcome, index, 'x')
    redis.call('HINCRBY', batch, 'suppressed', 1)
else
    redis.call('HSET', outcome, index, 'f ' .. ARGV[4] .. ' ' .. ARGV[5])
    redis.call('HINCRBY', batch, 'dead', 1)
    redis.call('XADD', dlq, '*', 'b', id, 'i', index, 'code', ARGV[4],
        'message', ARGV[5], 'attempts', ARGV[6])
end
outcome_ack()

local c = redis.call('HMGET', batch, 'total', 'sent', 'done', 'dead', 'cancelled', 'suppressed')
local total, sent, done, dead, cancelled, suppressed =
    tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[4]) or 0,
    tonumber(c[5]) or 0, tonumber(c[6]) or 0
if sent + done + dead + cancelled + suppressed >= total then
    if dead == 0 then
        redis.call('DEL', template)
        redis.call('HDEL', batch, 'riders')
    else
        redis.call('PEXPIRE', template, ttl)
    end
    if number then
        redis.call('PEXPIRE', number, ttl)
    end
    redis.call('PEXPIRE', list, ttl)
    redis.call('PEXPIRE', batch, ttl)
    redis.call('PEXPIRE', outcome, ttl)
    if inflight then
        redis.call('PEXPIRE', inflight, ttl)
    end
    if held then
        redis.call('PEXPIRE', held, ttl)
    end
    if events then
        redis.call('PEXPIRE', events, ttl)
    end
end
return 1
