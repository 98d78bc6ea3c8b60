-- show.lua: the batch view of one batch (sesgate batch, GET /batches/{id}),
-- a page at a time.
--
-- KEYS[1] the batch hash, KEYS[2] its outcome hash, KEYS[3] its recipient
-- list, KEYS[4] the delay set, KEYS[5] its delivery states (optional: the
-- hash events.lua writes, field "<index>:<address>", value
-- "<state>\t<ms>\t<detail>").
-- ARGV[1] the batch id.
-- ARGV[2] the first index of the page (default 0).
-- ARGV[3] how many indexes the page holds (default: every one).
-- ARGV[4] the delay set's scan: "0" to start it, the cursor an earlier
--         page returned to go on, "-" for none (default "0"); one ZSCAN
--         step of ARGV[5] (default 1000) members per call, or the whole
--         scan when ARGV[3] is absent.
-- ARGV[6] the delivery states' scan, as ARGV[4]: "0" to start it, the
--         cursor an earlier page returned, "-" for none (default "0");
--         one HSCAN step of ARGV[7] (default 1000) fields per call, or the
--         whole scan when ARGV[3] is absent. A hash Redis keeps as a
--         listpack (up to 128 fields) comes whole in the first step.
-- Returns {batch hash, outcomes of the page's indexes as flat (index,
-- outcome) pairs (indexes without one are left out), the page's
-- addresses, retries of this batch found by this call's scan step as flat
-- (index, attempt, due ms) triples, the scan's next cursor ("0": done),
-- the delivery states found by this call's scan step as flat (field,
-- value) pairs, that scan's next cursor ("0": done)}, or {} when the batch
-- does not exist.
-- The caller pages until it has every index and both cursors are "0": each
-- call reads at most ARGV[3] outcomes and addresses, ARGV[5] retries and
-- ARGV[7] delivery states,
-- so Redis answers other clients in between, even for a batch of a
-- million.
-- The hash holds the counters (sent, done, dead, cancelled, suppressed:
-- the batch is complete when they add up to total; one absent counts 0)
-- and the state (absent: running); an outcome is "s <MessageId>", "d",
-- "f <code> <message>", "c" (cancelled) or "x" (suppressed).
-- Atomicity: each call is one moment's view; the pages are not one moment.

local b, o, r, d = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
local first, count = tonumber(ARGV[2] or '0'), tonumber(ARGV[3] or '')
local cursor, scan = ARGV[4] or '0', tonumber(ARGV[5] or '1000')
local ecursor, escan = ARGV[6] or '0', tonumber(ARGV[7] or '1000')
if id == nil or not string.match(id, '^[0-9a-f-]+$') or first == nil or first < 0 or
    (ARGV[3] ~= nil and (count == nil or count < 0)) or scan == nil or scan < 1 or
    not (cursor == '-' or string.match(cursor, '^%d+$')) or escan == nil or escan < 1 or
    not (ecursor == '-' or string.match(ecursor, '^%d+$')) then
    return redis.error_reply('BADARGS show: batch id [first count [cursor [scan [states cursor [states scan]]]]]')
end
local h = redis.call('HGETALL', b)
if #h == 0 then return {} end
local n
for k = 1, #h, 2 do
    if h[k] == 'n' then n = h[k + 1] end
end
if count == nil then
    count = redis.call('LLEN', r)
end

local outs, fields = {}, {}
local last = first + count - 1
for i = first, last do
    fields[#fields + 1] = tostring(i)
    if #fields == 1000 or i == last then
        local got = redis.call('HMGET', o, unpack(fields))
        for k = 1, #fields do
            if got[k] then
                outs[#outs + 1] = fields[k]
                outs[#outs + 1] = got[k]
            end
        end
        fields = {}
    end
end
local list = {}
if count > 0 then
    list = redis.call('LRANGE', r, first, last)
end

-- Retries waiting: members "<n>:<index>:<attempt>" (a batch an earlier
-- release stored: "<id>:<index>:<attempt>").
local retry = {}
local function show_member(m, due)
    local p, i, a = string.match(m, '^(.+):(%d+):(%d+)$')
    if p and (p == n or p == id) then
        retry[#retry + 1] = i
        retry[#retry + 1] = a
        retry[#retry + 1] = due
    end
end
if cursor ~= '-' and redis.call('TYPE', d)['ok'] == 'zset' then
    repeat
        local res = redis.call('ZSCAN', d, cursor, 'COUNT', scan)
        cursor = res[1]
        for k = 1, #res[2], 2 do
            show_member(res[2][k], res[2][k + 1])
        end
    until cursor == '0' or ARGV[3] ~= nil
else
    cursor = '0'
end
-- Delivery states (events.lua): every field of the hash, a scan step at a
-- time; the caller sorts them to their indexes.
local states = {}
local e = KEYS[5]
if e and ecursor ~= '-' and redis.call('TYPE', e)['ok'] == 'hash' then
    repeat
        local res = redis.call('HSCAN', e, ecursor, 'COUNT', escan)
        ecursor = res[1]
        for k = 1, #res[2] do
            states[#states + 1] = res[2][k]
        end
    until ecursor == '0' or ARGV[3] ~= nil
else
    ecursor = '0'
end
return {h, outs, list, retry, cursor, states, ecursor}
