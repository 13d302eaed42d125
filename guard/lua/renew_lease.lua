-- renew_lease.lua — extend a lease that is still held. Never re-creates an expired or
-- released lease: that is reported as lost (and an expired one is reaped and counted).
-- KEYS[1..4] cfg, use, exp, lease (see common.lua; guard:{ns}:idle is derived)
-- ARGV[1] lease id
-- ARGV[2] ttl in ms (0: the lease's own ttl); capped by the function's lease_ttl_seconds
-- returns {1, expires_ms, ttl_ms} or {0}
local id = ARGV[1]
local m = redis.call('HGET', LEASE, id)
if not m then return {0} end
local fn, expires, fence, ttl, gs, granted, _, sfn, kt = meta_of(m)
if expires <= now then
  local delta = {}
  drop_leases({id}, {m}, delta, true)
  apply_delta(delta)
  return {0}
end
local want = tonumber(ARGV[2])
if want > 0 then
  local plan = redis.call('HGET', CFG, 'p:f:' .. fn)
  local cap = DEFAULT_TTL_MS
  if plan then cap = select(2, struct.unpack('>ii', plan)) end
  ttl = math.min(want, cap)
end
local new_expires = now + ttl
redis.call('HSET', LEASE, id, struct.pack(META, new_expires, granted, fence, ttl, #sfn, sfn) .. gs .. kt)
redis.call('ZADD', EXP, 'XX', new_expires, id)
-- A renew to a shorter TTL can make this the earliest expiry: lower the reap bound with it,
-- or the slot would stay counted until the bound's (the old) expiry.
local bound = tonumber(redis.call('HGET', USE, 'reap'))
if not bound or new_expires < bound then redis.call('HSET', USE, 'reap', new_expires) end
backstop()
return {1, new_expires, ttl}
