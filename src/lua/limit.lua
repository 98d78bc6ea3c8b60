-- limit.lua: the account-wide rate limiter and rolling 24-hour quota,
-- shared by every sesgate process. The arithmetic is src/ratelimit.c's,
-- operation for operation and in the same order (docs there), so both give
-- the same answers for the same calls.
--
-- KEYS[1]  account limiter    P:{P}:rl      hash: tat (integer ms), tatf (the
--                                           fraction of a ms, [0, 1)), R (base
--                                           rate, recipients/s), cut_rate and
--                                           cut_at (ms) of the last cut, at (the
--                                           latest now tat or a cut was written
--                                           at, ms)
-- KEYS[2]  account day        P:{P}:day     hash: <minute> -> recipients
--                                           counted in that minute (ms / 60000),
--                                           sum (of all minute fields), old and
--                                           new (oldest and newest minute held)
-- KEYS[3]  client limiter     P:{P}:rl:c:<client>    (take with a client only)
-- KEYS[4]  client day         P:{P}:day:c:<client>   (take with a client only)
-- Every key carries the same hash tag {P}, so one call touches one slot.
--
-- ARGV[1]  the subcommand, then its arguments; now is ms since the epoch,
--          or "" to use the server's TIME (one clock for every machine):
--   take <cost> <horizon ms> <R> <daily quota> <client R|""> <client quota|""> <now>
--       Reserve cost (>= 1) recipients. R (> 0) is the account's base rate
--       (rate = N, or MaxSendRate x headroom); it is stored, and a cut_rate
--       above it comes down to it, whether or not the take is granted.
--       A daily quota <= 0 is unlimited. With a client R the client's own
--       limiter must pass too (its start may not be later than the
--       account's: a client never reserves the account's time ahead); with
--       a client quota (<= 0: unlimited, still counted) its own day window
--       must pass too. Checks in order: quota, client_quota, rate (start -
--       now > horizon), client_rate. Refused: nothing is reserved or counted
--       anywhere. Granted: tat = start + cost * 1000 / r (account and
--       client, both from the account's start) and cost is counted at now.
--   throttled <now>
--       A Throttling answer from SES: cut_rate = max(R / 100, r(now) / 2),
--       cut_at = now, unless the last cut was less than 1000 ms before now.
--       tat is not moved.
--   status <now>
--       The account's state; the day window drops what left it.
--   refund <cost> <now>
--       Take back cost recipients counted but never sent (SES refused them
--       with Throttling) from the day window (KEYS[2], and KEYS[4] when a
--       client's keys are given), newest minute first, never below zero.
--
-- A clock that went back (ratelimit_rebase): take and throttled first look
-- at each limiter they load; when now is STEP ms or more before its at, tat
-- and cut_at move back by at - now and at becomes now (written at once, even
-- if the take is then refused), so that reservations stand as far ahead of
-- the new now as they stood of the latest write instead of a whole step
-- ahead. Without it, Redis's clock going back an hour would refuse every take
-- for an hour. A clock that went forward needs nothing: tat is simply past.
--
-- Effective rate: r(now) = R when never cut, else min(R, cut_rate + R *
-- 0.025 * (now - cut_at) / 1000), never below R / 100. Day window at now:
-- the minutes floor(now / 60000) - 1440 .. floor(now / 60000); a minute
-- leaves 24 h after its end. Old minutes are dropped at each call, each
-- minute once (amortized O(1); a window idle for a day is deleted whole);
-- only a quota refusal reads minutes, from the oldest up to the one that
-- must leave.
--
-- Returns:
--   take:      {granted 1|0, wait, reason, rate, used, now}: wait (decimal
--              string, ms, may be fractional): granted: start - now (0: send
--              now, then one recipient each 1000 / rate ms); refused: how
--              long until the refusing check could pass, "-1" for never (the
--              cost exceeds the quota); reason "", "rate", "quota",
--              "client_rate" or "client_quota"; rate: the account's
--              effective rate (decimal string); used: account recipients in
--              the day window after the call; now: the time the script
--              used (integer ms), from which the caller maps the
--              reservation onto its own clock.
--   throttled: {cut 1|0, rate}: whether it cut, the effective rate after
--              ("" when the account has no state yet).
--   status:    {rate, R, cut_rate, cut_at, used, tat}: decimal strings, ""
--              when unknown (never cut, no state); used an integer.
--   refund:    {used}: the account's recipients in the day window after.
-- Errors (nothing written): "BADARGS" for a malformed argument or key,
-- "WRONGTYPE" when a key holds something other than a hash.
--
-- Atomicity: Redis runs the script atomically; every check runs before the
-- first write and no later write can fail except for memory (Redis refuses
-- only the first write of a script under OOM: then nothing is written).
-- Keys get a time to live (the day window 24 h + 2 min after its last
-- count, a limiter a day after its tat), so an idle client's keys go away.

local RECOVER = 0.025
local FLOOR = 0.01
local CUT_FACTOR = 0.5
local CUT_WINDOW = 1000
local STEP = 1000
local MINUTE = 60000
local DAY = 86400000
local BUCKETS = 1441
local CHUNK = 120

local cmd = ARGV[1]
local nargs = { take = 8, throttled = 2, status = 2, refund = 3 }

-- An integer argument (exact in a double), or nil.
local function limit_int(s)
    local n = tonumber(s)
    if n == nil or n ~= n or n == math.huge or n == -math.huge or math.floor(n) ~= n or
        math.abs(n) >= 2 ^ 53 then
        return nil
    end
    return n
end

-- A rate argument (finite, > 0), or nil.
local function limit_rate(s)
    local n = tonumber(s)
    if n == nil or n ~= n or n == math.huge or n <= 0 then
        return nil
    end
    return n
end

if cmd == nil or nargs[cmd] == nil or #ARGV ~= nargs[cmd] then
    return redis.error_reply('BADARGS limit: take|throttled|status ... now')
end
local want_keys = 2
if cmd == 'take' and (ARGV[6] ~= '' or ARGV[7] ~= '') then
    want_keys = 4
end
if #KEYS ~= want_keys and not ((cmd == 'take' or cmd == 'refund') and #KEYS == 4) then
    return redis.error_reply('BADARGS limit: ' .. want_keys .. ' keys expected')
end
local tag = string.match(KEYS[1], '^[^{]*({[^}]+})')
for _, k in ipairs(KEYS) do
    if tag == nil or string.match(k, '^[^{]*({[^}]+})') ~= tag then
        return redis.error_reply('BADARGS limit: every key needs the same hash tag')
    end
end
for _, k in ipairs(KEYS) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= 'hash' then
        return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t .. ', not a hash')
    end
end

local now
if ARGV[#ARGV] == '' then
    if redis.replicate_commands then
        redis.replicate_commands()
    end
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
    now = limit_int(ARGV[#ARGV])
    if now == nil then
        return redis.error_reply('BADARGS limit: now must be integer ms or ""')
    end
end

local cost, horizon, rate, quota, c_rate, c_quota
if cmd == 'take' then
    cost, horizon = limit_int(ARGV[2]), tonumber(ARGV[3])
    rate, quota = limit_rate(ARGV[4]), limit_int(ARGV[5])
    if cost == nil or cost < 1 or horizon == nil or horizon ~= horizon or horizon < 0 or
        horizon == math.huge or rate == nil or quota == nil then
        return redis.error_reply('BADARGS limit: take cost horizon R quota client_R client_quota now')
    end
    if ARGV[6] ~= '' then
        c_rate = limit_rate(ARGV[6])
        if c_rate == nil then
            return redis.error_reply('BADARGS limit: client R must be > 0 or ""')
        end
    end
    if ARGV[7] ~= '' then
        c_quota = limit_int(ARGV[7])
        if c_quota == nil then
            return redis.error_reply('BADARGS limit: client quota must be an integer or ""')
        end
    end
end

-- Every check is done; writes may follow.

-- A double as a string that reads back as the same double.
local function limit_fmt(x)
    return string.format('%.17g', x)
end

-- An integer-valued double as digits.
local function limit_intfmt(x)
    return string.format('%d', x)
end

-- A limiter's state: tat (nil when never reserved), frac, R, cut_rate and
-- cut_at (nil when never cut).
local function limit_load(key)
    local v = redis.call('HMGET', key, 'tat', 'tatf', 'R', 'cut_rate', 'cut_at', 'at')
    local s = { key = key, tat = tonumber(v[1]), frac = tonumber(v[2]) or 0, R = tonumber(v[3]),
        cut_rate = tonumber(v[4]), cut_at = tonumber(v[5]), at = tonumber(v[6]) }
    if s.cut_rate == nil or s.cut_at == nil then
        s.cut_rate, s.cut_at = nil, nil
    end
    return s
end

-- Give a limiter key a day past its tat to live.
local function limit_touch(s)
    local ttl = DAY
    if s.tat ~= nil and s.tat > now then
        ttl = ttl + (s.tat - now)
    end
    redis.call('PEXPIRE', s.key, limit_intfmt(math.ceil(ttl)))
end

-- ratelimit_written: at is the latest now written at (as a field list).
local function limit_written(s)
    if s.at == nil or now > s.at then
        s.at = now
    end
    return 'at', limit_intfmt(s.at)
end

-- ratelimit_rebase: move tat and cut_at back with a clock that went back.
local function limit_rebase(s)
    if s.at == nil or now > s.at - STEP then
        return
    end
    local back = s.at - now
    local fields = { 'at', limit_intfmt(now) }
    s.at = now
    if s.tat ~= nil then
        s.tat = s.tat - back
        fields[#fields + 1], fields[#fields + 2] = 'tat', limit_intfmt(s.tat)
    end
    if s.cut_at ~= nil then
        s.cut_at = s.cut_at - back
        fields[#fields + 1], fields[#fields + 2] = 'cut_at', limit_intfmt(s.cut_at)
    end
    redis.call('HSET', s.key, unpack(fields))
    limit_touch(s)
end

-- ratelimit_set_rate: store R; a cut_rate above it comes down.
local function limit_set_rate(s, r)
    local fields = {}
    if s.R ~= r then
        s.R = r
        fields[#fields + 1], fields[#fields + 2] = 'R', limit_fmt(r)
    end
    if s.cut_at ~= nil and s.cut_rate > r then
        s.cut_rate = r
        fields[#fields + 1], fields[#fields + 2] = 'cut_rate', limit_fmt(r)
    end
    if #fields > 0 then
        redis.call('HSET', s.key, unpack(fields))
        limit_touch(s)
    end
end

-- ratelimit_effective.
local function limit_effective(s)
    local r = s.R
    if s.cut_at ~= nil then
        local elapsed = now - s.cut_at
        if elapsed < 0 then
            elapsed = 0
        end
        r = s.cut_rate + s.R * RECOVER * elapsed / 1000
        if r > s.R then
            r = s.R
        end
    end
    local floor_rate = s.R * FLOOR
    if r < floor_rate then
        r = floor_rate
    end
    return r
end

-- ratelimit_start: max(tat, now) as integer ms and fraction.
local function limit_start(s)
    if s.tat ~= nil and s.tat >= now then
        return s.tat, s.frac
    end
    return now, 0
end

-- ratelimit_reserve: tat = start + n * 1000 / r, the fraction carried.
local function limit_reserve(s, start_ms, start_frac, n, r)
    local d = n * 1000 / r
    local d_ms = math.floor(d)
    local frac = start_frac + (d - d_ms)
    local carry = 0
    if frac >= 1 then
        frac = frac - 1
        carry = 1
    end
    s.tat, s.frac = start_ms + d_ms + carry, frac
    local a, at = limit_written(s)
    redis.call('HSET', s.key, 'tat', limit_intfmt(s.tat), 'tatf', limit_fmt(frac), a, at)
end

-- ratelimit_day_advance: load a day window at now, dropping the minutes
-- that left it. Returns {key, old, new, sum}, old nil when empty.
local function limit_day(key)
    local v = redis.call('HMGET', key, 'old', 'new', 'sum')
    local d = { key = key, old = tonumber(v[1]), new = tonumber(v[2]), sum = tonumber(v[3]) or 0 }
    if d.old == nil or d.new == nil then
        d.old, d.new, d.sum = nil, nil, 0
        return d
    end
    local lo = math.floor(now / MINUTE) - (BUCKETS - 1)
    if lo > d.new then
        redis.call('DEL', key)
        d.old, d.new, d.sum = nil, nil, 0
        return d
    end
    if lo > d.old then
        local fields = {}
        for m = d.old, lo - 1 do
            fields[#fields + 1] = limit_intfmt(m)
        end
        local counts = redis.call('HMGET', key, unpack(fields))
        for i = 1, #fields do
            d.sum = d.sum - (tonumber(counts[i]) or 0)
        end
        redis.call('HDEL', key, unpack(fields))
        d.old = lo
        redis.call('HSET', key, 'old', limit_intfmt(d.old), 'sum', limit_intfmt(d.sum))
    end
    return d
end

-- ratelimit_day_add: count n recipients at now.
local function limit_day_add(d, n)
    local m = math.floor(now / MINUTE)
    if d.old == nil then
        d.old, d.new = m, m
    end
    if m < d.old then
        m = d.old
    end
    if m > d.new then
        d.new = m
    end
    d.sum = d.sum + n
    redis.call('HINCRBY', d.key, limit_intfmt(m), n)
    redis.call('HSET', d.key, 'old', limit_intfmt(d.old), 'new', limit_intfmt(d.new),
        'sum', limit_intfmt(d.sum))
    redis.call('PEXPIRE', d.key, DAY + 2 * MINUTE)
end

-- ratelimit_day_free_at: when need recipients will have left the window.
local function limit_day_free_at(d, need)
    if need <= 0 then
        return now
    end
    if d.old == nil or need > d.sum then
        return -1
    end
    local acc = 0
    local m = d.old
    while m <= d.new do
        local last = math.min(d.new, m + CHUNK - 1)
        local fields = {}
        for k = m, last do
            fields[#fields + 1] = limit_intfmt(k)
        end
        local counts = redis.call('HMGET', d.key, unpack(fields))
        for i = 1, #fields do
            acc = acc + (tonumber(counts[i]) or 0)
            if acc >= need then
                return (m + i - 1 + BUCKETS) * MINUTE
            end
        end
        m = last + 1
    end
    return -1
end

-- ratelimit_quota_fits: nil when n fits, else the wait (ms, -1: never).
local function limit_quota_wait(d, q, n)
    if q <= 0 or d.sum + n <= q then
        return nil
    end
    local at = limit_day_free_at(d, d.sum + n - q)
    if at < 0 then
        return -1
    end
    return at - now
end

if cmd == 'refund' then
    local n = limit_int(ARGV[2])
    if n == nil or n < 1 then
        return redis.error_reply('BADARGS limit: refund <cost >= 1> <now>')
    end
    local used = 0
    for k = 2, #KEYS, 2 do
        local d = limit_day(KEYS[k])
        local left = n
        if d.old ~= nil then
            for m = d.new, d.old, -1 do
                if left <= 0 then
                    break
                end
                local f = limit_intfmt(m)
                local c = tonumber(redis.call('HGET', d.key, f)) or 0
                local back = math.min(c, left)
                if back > 0 then
                    redis.call('HSET', d.key, f, limit_intfmt(c - back))
                    d.sum = d.sum - back
                    left = left - back
                end
            end
            redis.call('HSET', d.key, 'sum', limit_intfmt(d.sum))
        end
        if k == 2 then
            used = d.sum
        end
    end
    return { used }
end

if cmd == 'status' then
    local s = limit_load(KEYS[1])
    local d = limit_day(KEYS[2])
    local eff, tat = '', ''
    if s.R ~= nil then
        eff = limit_fmt(limit_effective(s))
    end
    if s.tat ~= nil then
        tat = limit_fmt(s.tat + s.frac)
    end
    return { eff, s.R and limit_fmt(s.R) or '', s.cut_rate and limit_fmt(s.cut_rate) or '',
        s.cut_at and limit_intfmt(s.cut_at) or '', d.sum, tat }
end

if cmd == 'throttled' then
    local s = limit_load(KEYS[1])
    if s.R == nil then
        return { 0, '' }
    end
    limit_rebase(s)
    if s.cut_at ~= nil and now - s.cut_at < CUT_WINDOW then
        return { 0, limit_fmt(limit_effective(s)) }
    end
    local r = limit_effective(s) * CUT_FACTOR
    local floor_rate = s.R * FLOOR
    if r < floor_rate then
        r = floor_rate
    end
    s.cut_rate, s.cut_at = r, now
    local a, at = limit_written(s)
    redis.call('HSET', s.key, 'cut_rate', limit_fmt(r), 'cut_at', limit_intfmt(now), a, at)
    limit_touch(s)
    return { 1, limit_fmt(limit_effective(s)) }
end

-- take
local acct = limit_load(KEYS[1])
limit_rebase(acct)
limit_set_rate(acct, rate)
local client
if c_rate ~= nil then
    client = limit_load(KEYS[3])
    limit_rebase(client)
    limit_set_rate(client, c_rate)
end
local day = limit_day(KEYS[2])
local c_day
if c_quota ~= nil then
    c_day = limit_day(KEYS[4])
end

local eff = limit_effective(acct)
local start_ms, start_frac = limit_start(acct)
local wait = (start_ms - now) + start_frac
local reason = ''
local answer

answer = limit_quota_wait(day, quota, cost)
if answer ~= nil then
    reason = 'quota'
elseif c_day ~= nil then
    answer = limit_quota_wait(c_day, c_quota, cost)
    if answer ~= nil then
        reason = 'client_quota'
    end
end
if reason == '' and wait > horizon then
    reason = 'rate'
    answer = wait - horizon
end
if reason == '' and client ~= nil then
    local c_ms, c_frac = limit_start(client)
    if c_ms > start_ms or (c_ms == start_ms and c_frac > start_frac) then
        reason = 'client_rate'
        answer = (c_ms - start_ms) + (c_frac - start_frac)
    end
end

if reason ~= '' then
    return { 0, limit_fmt(answer), reason, limit_fmt(eff), day.sum, now }
end
limit_reserve(acct, start_ms, start_frac, cost, eff)
limit_touch(acct)
limit_day_add(day, cost)
if client ~= nil then
    limit_reserve(client, start_ms, start_frac, cost, limit_effective(client))
    limit_touch(client)
end
if c_day ~= nil then
    limit_day_add(c_day, cost)
end
return { 1, limit_fmt(wait), '', limit_fmt(eff), day.sum, now }
