-- fill.lua: queue the next bounded step of a batch that enqueue.lua stored
-- but did not queue whole (its hash holds "filling").
--
-- KEYS[1]  batches filling   P:{P}:filling (sorted set: batch id, scored
--                                           by the time of its last step,
--                                           ms on Redis's clock)
-- KEYS[2]  the key prefix    P:{P}:  (not a key itself: the batch hash
--          P:{P}:b:<id>, the client's stream P:{P}:q:<client> and the set
--          of streams P:{P}:qs are this prefix plus "b:<id>", "q:<client>",
--          "qs", in the slot of KEYS[1]; the client is only known from the
--          batch hash)
--
-- ARGV[1]  the most stream entries this call adds (> 0)
-- ARGV[2]  the batch id; or "" for the batch of KEYS[1] whose last step is
--          the oldest, when that is more than ARGV[3] ms ago (a filler that
--          died: anyone may finish its batch)
-- ARGV[3]  with ARGV[2] = "": how long a batch's last step must be past
--
-- A step reads the next index to queue from the batch hash's "filling",
-- adds the entries b <n>, i <index> for indexes filling .. filling +
-- ARGV[1] - 1 (not past total) to the client's stream (made again, with
-- its group "w", and added to P:{P}:qs, when it was deleted), and then
-- either advances "filling" and scores the batch in KEYS[1] with the time
-- of this step, or, when the last index is queued, removes "filling" and
-- the batch from KEYS[1]. Steps are idempotent: a step replayed, or run by
-- two processes at once, reads the index the previous one left, so every
-- index is queued exactly once. A batch hash without "filling" is whole
-- (every batch of an earlier release): nothing is added, and a member of
-- KEYS[1] for such a batch, or for a batch that is gone, is removed.
--
-- Returns {batch id, entries still to queue after this step} ({"", 0}
-- when ARGV[2] is "" and no batch is overdue; 0: the batch is whole).
-- Errors (nothing written): "BADARGS", "WRONGTYPE", "NOBATCH" when the
-- batch given in ARGV[2] has no hash (expired, or Redis lost it).
--
-- Atomicity: one atomic step; checks run before the first write, and no
-- later write can fail except that Redis refuses the first write of a
-- script under OOM (then nothing is written, and the step can run again).

local filling, prefix = KEYS[1], KEYS[2]
local step, id, stale = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3] or '')
if step == nil or step < 1 or step ~= math.floor(step) or id == nil or prefix == nil or
    prefix == '' or filling == nil or (id == '' and (stale == nil or stale < 0)) then
    return redis.error_reply('BADARGS fill: keys filling prefix, args step id|"" [stale ms]')
end

local function fill_type(key, want)
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= want then
        return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want)
    end
    return nil
end

local err = fill_type(filling, 'zset') or fill_type(prefix .. 'qs', 'set')
if err then
    return err
end
if redis.replicate_commands then
    redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if id == '' then
    local due = redis.call('ZRANGEBYSCORE', filling, '-inf', now - stale, 'LIMIT', 0, 1)
    if #due == 0 then
        return { '', 0 }
    end
    id = due[1]
end

local batch = prefix .. 'b:' .. id
local h = redis.call('HMGET', batch, 'filling', 'total', 'client', 'n', 'u')
if not h[2] or not h[3] or not h[4] then
    redis.call('ZREM', filling, id)
    if ARGV[2] ~= '' then
        return redis.error_reply('NOBATCH the batch hash ' .. batch .. ' does not exist')
    end
    return { id, 0 }
end
local next, total = tonumber(h[1]), tonumber(h[2])
if next == nil or total == nil or next >= total then
    -- whole: a batch of an earlier release, or its last step already ran
    if h[1] then
        redis.call('HDEL', batch, 'filling')
    end
    redis.call('ZREM', filling, id)
    return { id, 0 }
end

-- A batch routed to [upstream.U] (field u) fills that upstream's stream.
local upfx = h[5] and (prefix .. 'u:' .. h[5] .. ':') or prefix
local stream = upfx .. 'q:' .. h[3]
err = fill_type(stream, 'stream') or fill_type(upfx .. 'qs', 'set')
if err then
    return err
end
if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
    redis.call('SADD', upfx .. 'qs', stream)
end
local upto = math.min(next + step, total)
for k = next, upto - 1 do
    redis.call('XADD', stream, '*', 'b', h[4], 'i', k)
end
if upto < total then
    redis.call('HSET', batch, 'filling', upto)
    redis.call('ZADD', filling, now, id)
else
    redis.call('HDEL', batch, 'filling')
    redis.call('ZREM', filling, id)
end
return { id, total - upto }
