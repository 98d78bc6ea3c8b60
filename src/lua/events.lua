-- events.lua: apply one SES event (from a verified SNS Notification) to
-- sesgate's state, once.
--
-- KEYS[1]  replay guard      P:{P}:sns:<SNS MessageId>
-- KEYS[2]  the index         P:{P}:m:<SES MessageId>: "<client>\t<batch id or
--          ->\t<index or ->", written when SES gave sesgate that MessageId
-- KEYS[3]  suppression list  P:{P}:sup (hash: address -> "<reason>\t<ms>\t<source>")
-- KEYS[4]  relays            P:{P}:relay (stream, group w)
-- KEYS[5]  the key prefix    P:{P}: (not a key itself: the batch keys
--          P:{P}:b:<id> and P:{P}:e:<id> of the indexed batch and the
--          transient bounce sets P:{P}:tb:<address> are this prefix plus
--          "b:<id>", "e:<id>", "tb:<address>": one hash tag, one slot; which
--          ones a call touches is only known from the index)
-- KEYS[6]  optional: the sync stream P:{P}:ss (given when [suppression]
--          sync_ses is on): an entry a <address> for each address the event
--          adds to the suppression list, for SES's account-level list
--          (src/supsync.c, as sup.lua notes the operator's changes)
--
-- ARGV[1]  now (ms)
-- ARGV[2]  replay window (ms): how long KEYS[1] is kept
-- ARGV[3]  state the event sets for each recipient: delayed, delivered,
--          rejected, bounced, complained, or "" (none: Send, Open, ...)
-- ARGV[4]  the state's time (ms): the event's own timestamp
-- ARGV[5]  suppression: BOUNCE or COMPLAINT (add each recipient), TRANSIENT
--          (count a transient bounce for each), or ""
-- ARGV[6]  transient bounces that add an address (0: never)
-- ARGV[7]  the window they are counted in (ms)
-- ARGV[8]  the clients that have an events_url, each followed by "\n"
-- ARGV[9]  TopicArn   ARGV[10] SNS message type   ARGV[11] SNS MessageId
-- ARGV[12] subscription ARN ("" unknown)   ARGV[13] the SNS body as sent
-- ARGV[14] n, the number of recipients that follow
-- ARGV[15..] n pairs: lowercased address, detail (a compact JSON object)
--
-- State per recipient of the indexed unit: field "<index>:<address>" of
-- P:{P}:e:<batch>, value "<state>\t<ms>\t<detail>". A state replaces the
-- recipient's current one when its rank is not lower (delayed 1, delivered
-- 2, rejected 3, bounced 4, complained 5): a Delivery after a DeliveryDelay
-- replaces it, a Complaint follows a Delivery, a late Delivery never hides
-- a bounce. The batch hash counts recipients per current state (fields
-- delivered, delayed, rejected, bounced, complained). The state hash lives
-- as long as the batch hash (its time to live is copied).
--
-- The suppression list is the account's: an event adds to it whether or
-- not its MessageId is indexed. An address already listed keeps its entry.
-- A transient bounce is recorded in P:{P}:tb:<address> (score its time);
-- transient_count of them within the window add the address (TRANSIENT).
--
-- The relay: when the index names a client listed in ARGV[8], the body is
-- queued on KEYS[4] (fields c, t, y, i, s, b, a = 0) for src/relay.c.
--
-- Returns {0, client, batch, states changed, addresses suppressed} when
-- applied ("" for an unknown client or batch), {1} for a replay (nothing
-- written). Errors (nothing written): "BADARGS".
--
-- Atomicity: one atomic step; the replay guard is written last, so an
-- event is applied once and whole (Redis refuses the first write of a
-- script under OOM, and then nothing is written).

local replay, index, sup, relays, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sync = KEYS[6]
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local state, at = ARGV[3], tonumber(ARGV[4])
local suppress, tcount, twindow = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local n = tonumber(ARGV[14])
local rank = { delayed = 1, delivered = 2, rejected = 3, bounced = 4, complained = 5 }

if now == nil or window == nil or window < 1 or at == nil or tcount == nil or twindow == nil
    or n == nil or n < 0 or #ARGV ~= 14 + 2 * n or prefix == nil or prefix == ''
    or (state ~= '' and rank[state] == nil)
    or (suppress ~= '' and suppress ~= 'BOUNCE' and suppress ~= 'COMPLAINT'
        and suppress ~= 'TRANSIENT') then
    return redis.error_reply('BADARGS events: see the header of events.lua')
end

if redis.call('EXISTS', replay) == 1 then
    return { 1 }
end

-- The index: client, batch and unit of SES's MessageId.
local client, batch, unit = '', '', ''
local ix = redis.call('GET', index)
if ix then
    local c, b, i = string.match(ix, '^([^\t]*)\t([^\t]*)\t([^\t]*)$')
    if c then
        client = c
        if b ~= '-' and i ~= '-' then
            batch, unit = b, i
        end
    end
end

-- Each recipient's state in the batch.
local changed = 0
local bkey, ekey = prefix .. 'b:' .. batch, prefix .. 'e:' .. batch
if state ~= '' and batch ~= '' and redis.call('EXISTS', bkey) == 1 then
    for k = 0, n - 1 do
        local addr, detail = ARGV[15 + 2 * k], ARGV[16 + 2 * k]
        local field = unit .. ':' .. addr
        local cur = redis.call('HGET', ekey, field)
        local cstate = cur and string.match(cur, '^([^\t]*)') or nil
        if cstate == nil or rank[cstate] == nil or rank[state] >= rank[cstate] then
            redis.call('HSET', ekey, field, state .. '\t' .. at .. '\t' .. detail)
            if cstate ~= state then
                if cstate and rank[cstate] then
                    redis.call('HINCRBY', bkey, cstate, -1)
                end
                redis.call('HINCRBY', bkey, state, 1)
            end
            changed = changed + 1
        end
    end
    local ttl = redis.call('PTTL', bkey)
    if ttl > 0 then
        redis.call('PEXPIRE', ekey, ttl)
    end
end

-- The suppression list.
local added = 0
if suppress ~= '' then
    for k = 0, n - 1 do
        local addr = ARGV[15 + 2 * k]
        local add = suppress
        if suppress == 'TRANSIENT' then
            add = nil
            local tb = prefix .. 'tb:' .. addr
            redis.call('ZADD', tb, at, at .. ':' .. ARGV[11])
            redis.call('ZREMRANGEBYSCORE', tb, '-inf', '(' .. (now - twindow))
            redis.call('PEXPIRE', tb, twindow)
            if tcount > 0 and redis.call('ZCARD', tb) >= tcount then
                add = 'TRANSIENT'
            end
        end
        if add and redis.call('HSETNX', sup, addr, add .. '\t' .. now .. '\tevent') == 1 then
            added = added + 1
            if sync then
                redis.call('XADD', sync, '*', 'a', addr)
            end
        end
    end
end

-- The relay to the client's events_url.
if client ~= '' and string.find('\n' .. ARGV[8], '\n' .. client .. '\n', 1, true) then
    if redis.call('EXISTS', relays) == 0 then
        redis.call('XGROUP', 'CREATE', relays, 'w', '0', 'MKSTREAM')
    end
    redis.call('XADD', relays, '*', 'c', client, 't', ARGV[9], 'y', ARGV[10], 'i', ARGV[11],
        's', ARGV[12], 'b', ARGV[13], 'a', '0')
end

redis.call('SET', replay, '1', 'PX', window)
return { 0, client, batch, changed, added }
