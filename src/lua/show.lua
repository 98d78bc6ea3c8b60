-- show.lua: the batch view of one batch (sesgate batch, GET /batches/{id}).
--
-- KEYS[1] the batch hash, KEYS[2] its outcome hash, KEYS[3] its recipient
-- list, KEYS[4] the delay set.
-- ARGV[1] the batch id.
-- Returns {batch hash, outcomes, recipients, retries waiting as flat
-- (index, attempt, due ms) triples}, or {} when the batch does not exist.
-- The hash holds the counters (sent, done, dead, cancelled: the batch is
-- complete when they add up to total) and the state (absent: running);
-- an outcome is "s <MessageId>", "d", "f <code> <message>" or "c"
-- (cancelled).
-- Atomicity: one script, so the four parts are one moment's view.

local b, o, r, d = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
if id == nil or not string.match(id, '^[0-9a-f-]+$') then
    return redis.error_reply('BADARGS show: batch id')
end
local h = redis.call('HGETALL', b)
if #h == 0 then return {} end
local outs = redis.call('HGETALL', o)
local list = redis.call('LRANGE', r, 0, -1)
local retry = {}
if redis.call('TYPE', d)['ok'] == 'zset' then
    local cursor = '0'
    repeat
        local res = redis.call('ZSCAN', d, cursor, 'MATCH', id .. ':*', 'COUNT', 1000)
        cursor = res[1]
        for k = 1, #res[2], 2 do
            local i, a = string.match(res[2][k], '^' .. id .. ':(%d+):(%d+)$')
            if i then
                retry[#retry + 1] = i
                retry[#retry + 1] = a
                retry[#retry + 1] = res[2][k + 1]
            end
        end
    until cursor == '0'
end
return {h, outs, list, retry}
