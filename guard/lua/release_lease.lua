-- release_lease.lua — give a lease back. Idempotent: an unknown, released or expired
-- lease is "not held" (an expired one is reaped here and counted as expired).
-- KEYS[1..4] cfg, use, exp, lease (see common.lua; guard:{ns}:idle is derived)
-- ARGV[1] lease id
-- returns 1 when the lease was held, 0 otherwise
-- Publishes on guard:{ns}:released while someone waits (wu in the future), also for an
-- expired lease reaped here: the tickets the freed slots go to (common.lua `reap`, its wake branch).
local id = ARGV[1]
local m = redis.call('HGET', LEASE, id)
if not m then return 0 end
local fn, expires, _, _, gs, granted, cn, _, kt = meta_of(m)
if expires <= now then
  local delta = {}
  drop_leases({id}, {m}, delta, true)
  apply_delta(delta)
  if num(redis.call('HGET', USE, 'wu')) > now then reap(now, fn, cn, gs) end
  return 0
end
redis.call('HDEL', LEASE, id)
redis.call('ZREM', EXP, id)
-- One HMGET and one HSET: the level counters, the hold-time EWMA and the waiter stamp.
local fields = {'h:' .. cn, 'wu', 'a', 'f:' .. cn}
for g in string.gmatch(gs, '[^,]+') do fields[#fields + 1] = 'g:' .. g end
local nlevels = #fields
if kt ~= '' then  -- the key's counters (common.lua meta_of): deleted at 0
  local key
  for part in string.gmatch(string.sub(kt, 3), '[^%z]+') do
    if not key then
      key = string.sub(part, 2)
      if string.byte(part) == 49 then fields[#fields + 1] = 'k:' .. cn .. '|' .. key end
    else
      fields[#fields + 1] = 'kg:' .. part .. '|' .. key
    end
  end
end
local u = redis.call('HMGET', USE, unpack(fields))
-- EWMA of this function's hold time (weight 1/8), behind acquire's retry_after.
local hold, old = now - granted, tonumber(u[1])
local set = {fields[1], old and math.floor(old + (hold - old) / 8) or hold}
for i = 3, nlevels do
  local v = num(u[i]) - 1
  set[2 * i - 3] = fields[i]
  set[2 * i - 2] = v > 0 and v or 0
end
for i = nlevels + 1, #fields do
  local v = num(u[i]) - 1
  if v > 0 then
    set[#set + 1] = fields[i]
    set[#set + 1] = v
  else
    redis.call('HDEL', USE, fields[i])
  end
end
redis.call('HSET', USE, unpack(set))
-- While a waiter is registered: wake the tickets the freed slots go to (common.lua `reap`, its wake branch).
if u[2] and tonumber(u[2]) > now then reap(now, fn, cn, gs) end
return 1
