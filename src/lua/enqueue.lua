-- enqueue.lua: store a batch and queue its first stream entries, one per
-- recipient, at most ARGV[13] of them; fill.lua queues the rest in steps.
--
-- KEYS[1]  batch hash        P:{P}:b:<id>
-- KEYS[2]  recipient list    P:{P}:r:<id>
-- KEYS[3]  queue stream      P:{P}:q:<client>  (the client's own stream,
--                                                consumer group "w")
-- KEYS[4]  recent batches    P:{P}:recent (sorted set)
-- KEYS[5]  outcome hash      P:{P}:o:<id>
-- KEYS[6]  template          P:{P}:t:<id>  (string)
-- KEYS[7]  batch numbers     P:{P}:seq     (counter)
-- KEYS[8]  queue streams     P:{P}:qs      (set: every client's stream key,
--                                           what the workers read); for a
--                                           batch routed to [upstream.U]
--                                           P:{P}:u:<U>:qs, and KEYS[3]
--                                           P:{P}:u:<U>:q:<client>: the
--                                           batch hash then records u = U
-- KEYS[9]  staged addresses  P:{P}:rs:<id> (list: the first To addresses,
--                                           pushed by the caller in chunks
--                                           before this call; renamed to
--                                           KEYS[2])
-- KEYS[10] batches filling   P:{P}:filling (sorted set: the id of every
--                                           batch whose entries are not all
--                                           queued yet, scored by the time
--                                           of its last step, ms on Redis's
--                                           clock)
-- KEYS[11] copy 0's index    P:{P}:m:<MessageId> (optional: the key of
--                                           ARGV[10]'s MessageId, written
--                                           when ARGV[14] > 0)
-- Every key carries the same hash tag {P}, so one call touches one slot;
-- the batch's number key P:{P}:n:<n> (n is known only once KEYS[7] was
-- incremented) is KEYS[7]'s prefix plus "n:<n>", in the same slot.
--
-- ARGV[1]  batch id
-- ARGV[2]  created, ms since the epoch (also the score in the recent set)
-- ARGV[3]  client name
-- ARGV[4]  API (1: Query, 2: REST-JSON)
-- ARGV[5]  action (SendEmail, SendRawEmail, ...)
-- ARGV[6]  template (the request without destinations, stored once)
-- ARGV[7]  riders ("c:addr" / "b:addr" lines, copy 0 only; may be empty)
-- ARGV[8]  flags (free text: raw, DKIM envelope-only)
-- ARGV[9]  status_ttl, ms (kept in the batch hash for the operator tools)
-- ARGV[10] copy 0: empty when every To recipient is queued; otherwise the
--          caller already sent copy 0 (first_recipient = sync) and this is
--          the MessageId SES gave it
-- ARGV[11] how many To addresses the caller staged in KEYS[9] (0: none);
--          a large batch is staged in chunks so that no single command
--          carries a million arguments
-- ARGV[12] the addresses left out because SES would refuse them
--          ([send] invalid_recipients = skip), as JSON text
--          [{"address": ..., "reason": ...}, ...]; empty when none. Kept in
--          the batch hash as "invalid" for the batch view; never sent.
-- ARGV[13] the most stream entries this call adds (> 0): a step of
--          bounded length, so that other clients' commands run in between
-- ARGV[14] the MessageId index's time to live, ms: with copy 0 sent and
--          KEYS[11] given, KEYS[11] = "<client>\t<batch id>\t0" for the SES
--          events that name copy 0's MessageId; 0: no index
-- ARGV[15..] the other To addresses in order, after the staged ones: the
--          address of index i is the staged list's element i, then
--          ARGV[15 + i - staged]
--
-- Writes: a number n for the batch (INCR of KEYS[7]) and the number key
-- n:<n> holding the batch id; the batch hash (n, client, api, action,
-- created, total, first, riders, flags, ttl, the counters sent, done,
-- failed, dead, and invalid when ARGV[12] is not empty); the template as a string of its own (so the hash stays a
-- compact listpack); the recipient list, where the address of index i is
-- at position i; one stream entry per queued recipient with exactly the
-- fields b <n> and i <index> (the address is read from the list and the
-- batch id from the number key, so an entry costs about 17 bytes); the batch
-- id in the recent set, from which batches older than status_ttl go. "total" counts every To
-- recipient; the batch is complete when that many outcomes are recorded
-- (outcome.lua). When copy 0 was sent by the caller, "first" is 1, its
-- outcome "s <MessageId>" is recorded at once, "sent" starts at 1, and only
-- indexes 1..total-1 are queued.
--
-- Bounded steps: at most ARGV[13] entries are added (indexes first ..
-- first+ARGV[13]-1). When more remain, the batch hash gets "filling" = the
-- next index to queue and the batch id goes into KEYS[10] scored with the
-- server's TIME; fill.lua then queues the rest a step at a time and removes
-- both at the end. A batch hash without "filling" is whole (every batch an
-- earlier release stored is).
--
-- Returns the number of stream entries added (fewer than total - first:
-- the batch is being filled).
-- Errors (nothing written): "BATCHEXISTS" when the batch hash, its
-- recipient list or its outcomes exist; "BADARGS" for a malformed argument
-- or nothing to queue; "STAGED" when the staged list does not hold exactly
-- ARGV[11] addresses (a chunk was refused or lost: the caller deletes it);
-- "WRONGTYPE" when a key holds another type than expected; an OOM error
-- when Redis is over maxmemory.
--
-- Atomicity: Redis runs a script atomically (nothing else runs in between),
-- but it does not roll back the writes a script made before a later error.
-- So every check (existence, argument shape, key types, the consumer group)
-- runs before the first write, and a write fails only for lack of memory.
-- Under maxmemory Redis refuses the first write of a script with OOM when
-- memory was exhausted as the script started, and never refuses a later one:
-- the script then ends before writing anything. Once the first write
-- succeeded the rest always completes. So the batch is stored whole or not
-- at all, and the caller reports success only after this script returned.

local batch, list, stream, recent, outcome, template, seq, streams, staged, filling =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local id = ARGV[1]
local created = tonumber(ARGV[2])
local ttl = tonumber(ARGV[9])
local copy0 = ARGV[10]
local nstaged = tonumber(ARGV[11])
local invalid = ARGV[12]
local step = tonumber(ARGV[13])
local ittl = tonumber(ARGV[14])
local naddr = (nstaged or 0) + #ARGV - 14
local first = 0
if copy0 ~= nil and copy0 ~= '' then
    first = 1
end
local prefix = seq and string.match(seq, '^(.*)seq$')
-- the upstream the batch is routed to: KEYS[8] is P:{P}:u:<U>:qs (nil: [upstream])
local up = prefix and streams and string.sub(streams, 1, #prefix) == prefix and
    string.match(string.sub(streams, #prefix + 1), '^u:([%w_-]+):qs$')

if id == nil or id == '' or created == nil or ttl == nil or ttl <= 0 or copy0 == nil or
    nstaged == nil or nstaged < 0 or nstaged ~= math.floor(nstaged) or invalid == nil or
    naddr < 1 or (naddr < first + 1 and invalid == '') or prefix == nil or streams == nil or
    staged == nil or filling == nil or step == nil or step < 1 or step ~= math.floor(step) or
    ittl == nil or ittl < 0 or ittl ~= math.floor(ittl) then
    return redis.error_reply('BADARGS enqueue: id, created, ttl, copy 0, staged count, invalid, step, index ttl and an address to queue')
end

local function enqueue_type(key, want)
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= want then
        return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want)
    end
    return nil
end

if redis.call('EXISTS', batch, list, outcome, template) ~= 0 then
    return redis.error_reply('BATCHEXISTS batch ' .. id .. ' already exists')
end
local err = enqueue_type(stream, 'stream') or enqueue_type(recent, 'zset') or
    enqueue_type(seq, 'string') or enqueue_type(streams, 'set') or enqueue_type(staged, 'list') or
    enqueue_type(filling, 'zset')
if err then
    return err
end
local have = redis.call('LLEN', staged)
if have ~= nstaged then
    return redis.error_reply('STAGED the staged list holds ' .. have .. ' of ' .. nstaged .. ' addresses')
end
local last = redis.call('GET', seq)
if last and not string.match(last, '^%d+$') then
    return redis.error_reply('WRONGTYPE ' .. seq .. ' is not a counter')
end

local have_group = false
if redis.call('EXISTS', stream) == 1 then
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
        -- RESP2 conversion: a flat name/value array per group
        for k = 1, #g, 2 do
            if g[k] == 'name' and g[k + 1] == 'w' then
                have_group = true
            end
        end
    end
end

-- The step's end, and the time of the step (Redis's clock) when more remain.
local upto = math.min(first + step, naddr)
local now
if upto < naddr then
    if redis.replicate_commands then
        redis.replicate_commands()
    end
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- First write: the one Redis refuses under OOM, before anything is stored.
if not have_group then
    redis.call('XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
end
local n = redis.call('INCR', seq)
redis.call('SADD', streams, stream)

redis.call('SET', prefix .. 'n:' .. n, id)
redis.call('HSET', batch, 'n', n, 'client', ARGV[3], 'api', ARGV[4], 'action', ARGV[5],
    'created', ARGV[2], 'total', naddr, 'first', first, 'riders', ARGV[7], 'flags', ARGV[8],
    'ttl', ARGV[9], 'sent', first, 'done', 0, 'failed', 0, 'dead', 0)
if invalid ~= '' then
    redis.call('HSET', batch, 'invalid', invalid)
end
if up then
    redis.call('HSET', batch, 'u', up)
end
redis.call('SET', template, ARGV[6])
if first == 1 then
    redis.call('HSET', outcome, 0, 's ' .. copy0)
    if KEYS[11] and ittl > 0 then
        redis.call('SET', KEYS[11], ARGV[3] .. '\t' .. id .. '\t0', 'PX', ittl)
    end
end

-- The staged addresses come first (RENAME is O(1); the staged list's
-- expiry, a guard against a caller that died while staging, goes), then
-- the rest, in chunks: Lua's unpack is bounded by its C stack.
if nstaged > 0 then
    redis.call('RENAME', staged, list)
    redis.call('PERSIST', list)
end
local chunk = 1000
for s = 15, #ARGV, chunk do
    local e = math.min(s + chunk - 1, #ARGV)
    redis.call('RPUSH', list, unpack(ARGV, s, e))
end

for k = first, upto - 1 do
    redis.call('XADD', stream, '*', 'b', n, 'i', k)
end
if upto < naddr then
    redis.call('HSET', batch, 'filling', upto)
    redis.call('ZADD', filling, now, id)
end

redis.call('ZREMRANGEBYSCORE', recent, '-inf', '(' .. (created - ttl))
redis.call('ZADD', recent, created, id)
return upto - first
