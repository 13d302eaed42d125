-- release_lease.lua — give a lease back. Idempotent: an unknown, released or expired
-- lease is "not held" (an expired one is reaped here and counted as expired).
-- KEYS[1..4] cfg, use, exp, lease (see common.lua)
-- ARGV[1] lease id    ARGV[2] release channel (published to while waiters are registered)
-- returns {1, fn} when the lease was held, {0, fn or ""} otherwise
local id = ARGV[1]
local m = redis.call('HGET', LEASE, id)
if not m then return {0, ''} end
local fn, expires, _, _, gs, granted = string.match(m, META)
if tonumber(expires) <= now then
  local delta = {}
  drop_leases({id}, {m}, delta, true)
  apply_delta(delta)
  return {0, fn}
end
redis.call('HDEL', LEASE, id)
redis.call('ZREM', EXP, id)
-- One HMGET and one HSET: the level counters, the waiter stamp and the hold-time EWMAs.
local fields = {'wu', 'h', 'h:' .. fn, 'a', 'f:' .. fn}
for g in string.gmatch(gs, '[^,]+') do fields[#fields + 1] = 'g:' .. g end
local u = redis.call('HMGET', USE, unpack(fields))
local hold = now - granted
local set = {}
for i = 2, 3 do  -- EWMA of hold time (weight 1/8), behind acquire's retry_after
  local old = tonumber(u[i])
  set[2 * i - 3] = fields[i]
  set[2 * i - 2] = old and math.floor(old + (hold - old) / 8) or hold
end
for i = 4, #fields do
  local v = num(u[i]) - 1
  set[2 * i - 3] = fields[i]
  set[2 * i - 2] = v > 0 and v or 0
end
redis.call('HSET', USE, unpack(set))
if num(u[1]) > now then redis.call('PUBLISH', ARGV[2], fn) end
return {1, fn}
