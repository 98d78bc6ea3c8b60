-- load.lua: what a worker needs to send the copies of a batch, found from
-- the number its stream entries carry.
--
-- KEYS[1]  number key        P:{P}:n:<n>  (string: the batch id)
-- The batch hash P:{P}:b:<id> and the template P:{P}:t:<id> are KEYS[1]'s
-- prefix plus "b:<id>" and "t:<id>": the same hash tag, so the same slot.
--
-- ARGV[1]  none: the script takes no arguments
--
-- Returns nil when the number key or the batch hash is gone (the batch
-- expired or never existed: the worker acknowledges the entry), else
-- {id, template, riders, api, flags, action, client, state}, each a string
-- or nil when absent (the template is gone once every recipient was sent;
-- state is "running", "paused" or "cancelled", "running" when the hash has
-- no state field, as a batch stored by sesgate 0.1.0).
-- Errors: "BADARGS" when KEYS[1] is not shaped P:{P}:n:<n>.
--
-- Atomicity: reads only.

local number = KEYS[1]
local prefix = number and string.match(number, '^(.*}:)n:%d+$')
if prefix == nil then
    return redis.error_reply('BADARGS load: the number key is not shaped P:{P}:n:<n>')
end
local id = redis.call('GET', number)
if not id then
    return nil
end
local h = redis.call('HMGET', prefix .. 'b:' .. id, 'riders', 'api', 'flags', 'action', 'client',
    'state')
if not h[2] then
    return nil
end
local t = redis.call('GET', prefix .. 't:' .. id)
return { id, t, h[1], h[2], h[3], h[4], h[5], h[6] or 'running' }
