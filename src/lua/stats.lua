-- stats.lua: the queue summary over every client stream (sesgate status,
-- the admin listener's gauges).
--
-- KEYS[1] the set of queue streams, KEYS[2] the delay set, KEYS[3] the dead
-- letters, KEYS[4] the recent set, KEYS[5] the key prefix; KEYS[6..]
-- optional: more sets of queue streams (each [upstream.NAME]'s
-- P:{P}:u:<NAME>:qs), whose streams count with KEYS[1]'s.
-- ARGV[1] how many recent batches.
-- Returns {depth, oldest entry id, entries pending in the group, retries
-- waiting, dead letters, flat rows of (id, created, total, sent, done, dead,
-- client, action, cancelled, state, filling, delivered, bounced,
-- complained, delayed, rejected, suppressed) for the most recent batches,
-- {relays on the relay stream P:{P}:relay, of which read and not yet finished,
-- relays waiting for a retry in P:{P}:relay:d, dead relays on P:{P}:relay:dlq}} (the
-- relay keys are KEYS[5] plus "relay", "relay:d", "relay:dlq"; a reply of sesgate before
-- relays has 6 elements). The batch's last six are its counters of
-- recipients per delivery state (events.lua) and of units skipped as
-- suppressed; "" when the hash has none (0).
-- A batch is complete when sent + done + dead + cancelled + suppressed ==
-- total (suppressed "" when the hash has none: 0); its
-- state is "" when the hash has none (running, as a batch stored by sesgate
-- 0.1.0); filling is the next index to queue of a batch still being
-- filled, "" once it is whole.
-- Atomicity: read only; one script, so the counts are one moment's view.

local qs, d, dlq, recent, prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local n = tonumber(ARGV[1]) or 10
local function len(key, want, cmd)
    if redis.call('TYPE', key)['ok'] ~= want then return 0 end
    return redis.call(cmd, key)
end
local function ms(id) return tonumber(string.match(id, '^(%d+)')) or 0 end
local depth, oldest, pending = 0, '', 0
local streams = {}
for k, set in ipairs(KEYS) do
    if (k == 1 or k > 5) and redis.call('TYPE', set)['ok'] == 'set' then
        for _, q in ipairs(redis.call('SMEMBERS', set)) do streams[#streams + 1] = q end
    end
end
for _, q in ipairs(streams) do
    local k = len(q, 'stream', 'XLEN')
    if k > 0 then
        depth = depth + k
        local first = redis.call('XRANGE', q, '-', '+', 'COUNT', 1)
        if #first == 1 and (oldest == '' or ms(first[1][1]) < ms(oldest)) then
            oldest = first[1][1]
        end
        local p = redis.pcall('XPENDING', q, 'w')
        if type(p) == 'table' and p.err == nil then pending = pending + p[1] end
    end
end
local out = {depth, oldest, pending, len(d, 'zset', 'ZCARD'), len(dlq, 'stream', 'XLEN')}
local rows = {}
if n > 0 and redis.call('TYPE', recent)['ok'] == 'zset' then
    for _, id in ipairs(redis.call('ZREVRANGE', recent, 0, n - 1)) do
        local c = redis.call('HMGET', prefix .. 'b:' .. id, 'created', 'total', 'sent',
            'done', 'dead', 'client', 'action', 'cancelled', 'state', 'filling', 'delivered',
            'bounced', 'complained', 'delayed', 'rejected', 'suppressed')
        rows[#rows + 1] = id
        for k = 1, 16 do rows[#rows + 1] = c[k] or '' end
    end
end
out[6] = rows
local rl = prefix .. 'relay'
local rpending = 0
if redis.call('TYPE', rl)['ok'] == 'stream' then
    local p = redis.pcall('XPENDING', rl, 'w')
    if type(p) == 'table' and p.err == nil then rpending = p[1] end
end
out[7] = {len(rl, 'stream', 'XLEN'), rpending, len(prefix .. 'relay:d', 'zset', 'ZCARD'),
    len(prefix .. 'relay:dlq', 'stream', 'XLEN')}
return out
