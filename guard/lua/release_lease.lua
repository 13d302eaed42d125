-- release_lease.lua — give a lease back. Idempotent: an unknown, released or expired
-- lease is "not held" (an expired one is reaped here and counted as expired).
-- KEYS[1..4] cfg, use, exp, lease (see common.lua; guard:{ns}:idle is derived)
-- ARGV[1] lease id
-- returns 1 when the lease was held, 0 otherwise
-- Publishes on guard:{ns}:released while someone waits (wu in the future):
-- "<fn>|<id><id>..." naming the oldest live tickets of the function (16-byte lease ids, as
-- many as it has free slots now, at most 16; acquire_lease.lua "Waiting queue") while it
-- has a queue, else "<fn>" (a listener then wakes a waiter of fn, or all when none waits).
local id = ARGV[1]
local m = redis.call('HGET', LEASE, id)
if not m then return 0 end
local fn, expires, _, _, gs, granted, cn, _, kt = meta_of(m)
if expires <= now then
  local delta = {}
  drop_leases({id}, {m}, delta, true)
  apply_delta(delta)
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
if u[2] and tonumber(u[2]) > now then
  local QP, msg = string.sub(USE, 1, -4), fn
  -- the function has tickets (w:<fn>, read only here: off the uncontended path): wake the
  -- oldest live ones
  if num(redis.call('HGET', USE, 'w:' .. cn)) > now then
    local Q, QD = QP .. 'q:' .. cn, QP .. 'qd:' .. cn
    local dead = redis.call('ZRANGEBYSCORE', QD, '-inf', now, 'LIMIT', 0, 128)
    if #dead > 0 then
      redis.call('ZREM', Q, unpack(dead))
      redis.call('ZREM', QD, unpack(dead))
    end
    -- as many as the function has free slots now (1 without a limit of its own), at most
    -- 16: a ticket named by an earlier release may not have taken its slot yet
    local free, plan = 1, redis.call('HGET', KEYS[1], 'p:f:' .. cn)
    if plan then
      local fmax = struct.unpack('>i', plan)
      if fmax >= 0 then free = fmax - (num(u[4]) - 1) end
    end
    if free > 0 then
      local heads = redis.call('ZRANGE', Q, 0, math.min(free, 16) - 1)
      if #heads > 0 then msg = fn .. '|' .. table.concat(heads) end
    end
  end
  redis.call('PUBLISH', QP .. 'released', msg)
end
return 1
