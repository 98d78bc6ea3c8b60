-- sup.lua: add addresses to the suppression list or remove them, and note
-- each change for the mirror of SES's account-level list, in one step
-- (sesgate suppression, the admin listener's /suppression).
--
-- KEYS[1]  the suppression list   P:{P}:sup   hash: field the lower-cased
--                                              address, value
--                                              "<reason>\t<ms>\t<source>"
-- KEYS[2]  optional: the sync stream P:{P}:ss (given when [suppression]
--          sync_ses is on): one entry, field a = the address, per address
--          added or removed; the worker's mirror (src/supsync.c) reads the
--          address's current state from KEYS[1] when it sends, so entries
--          may be applied in any order and more than once.
--
-- ARGV[1]  "put", then field value pairs (at most 1,000 pairs per call), or
--          "del", then fields.
-- Returns the number of fields added (put: the new ones; an existing one
-- is updated) or removed (del).
-- Errors (nothing written): "BADARGS".
-- Atomicity: one atomic step; the first write is the list's, so an
-- out-of-memory refusal writes nothing.

local list, stream = KEYS[1], KEYS[2]
local op = ARGV[1]
if (op ~= 'put' and op ~= 'del') or #ARGV < 2 or (op == 'put' and #ARGV % 2 ~= 1) then
    return redis.error_reply('BADARGS sup: put field value [field value ...] | del field [field ...]')
end
local n = 0
if op == 'put' then
    for k = 2, #ARGV, 2 do
        n = n + redis.call('HSET', list, ARGV[k], ARGV[k + 1])
    end
    if stream then
        for k = 2, #ARGV, 2 do
            redis.call('XADD', stream, '*', 'a', ARGV[k])
        end
    end
    return n
end
for k = 2, #ARGV do
    local gone = redis.call('HDEL', list, ARGV[k])
    n = n + gone
    if stream and gone == 1 then
        redis.call('XADD', stream, '*', 'a', ARGV[k])
    end
end
return n
