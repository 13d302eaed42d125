-- read_usage.lua — reap expired leases, then return every counter of the namespace.
-- KEYS[1..4] cfg, use, exp, lease (see common.lua)
-- returns the flat field/value list of guard:{ns}:use (HGETALL), after reaping
local bound = tonumber(redis.call('HGET', USE, 'reap'))
if bound and bound <= now then reap(now) end
return redis.call('HGETALL', USE)
