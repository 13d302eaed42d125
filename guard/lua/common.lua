-- common.lua — prepended to every lease script (not registered on its own). The loader
-- (guard/store.py) puts the constants DEFAULT_TTL_MS and BACKSTOP_MS on the line before.
--
-- Key layout (one namespace = one hash tag, so one script sees every level):
--   KEYS[1] guard:{ns}:cfg   hash: settings (JSON docs) and compiled admission plans
--   KEYS[2] guard:{ns}:use   hash: in-use counters per level, counters for metrics,
--                                   bookkeeping (fence, reap bound, backstop stamp, waiters)
--   KEYS[3] guard:{ns}:exp   zset: lease id -> expires_at (ms, server time)
--   KEYS[4] guard:{ns}:lease hash: lease id -> "fn|expires|fence|ttl|groups|granted"
-- Field names in guard:{ns}:use:
--   a          account in use          f:<fn>   function in use     g:<grp>  group in use
--   n:<fn>     grants                  x:<fn>   expired (reaped)    u:<fn>   fail-open runs
--   t:<fn>|<scope>  throttles          s:<fn>|<scope>  shadow throttles
--   h, h:<fn>  EWMA of hold time (ms)  fence    last fence issued
--   reap       lower bound of the earliest lease expiry (skip reaping while now < reap)
--   bk         when backstop TTLs were last refreshed   wu  waiters registered until (ms)
--   ep, qu, mt failover quarantine (only with it on): server run_id last seen, grants refused
--              until qu (ms), longest TTL granted (ms) — see acquire_lease.lua
-- The exp zset and lease hash carry a sentinel member/field "" so that they are never
-- emptied (and so never lose their backstop TTL) while the namespace is in use.
--
-- Cost notes (Redis main-thread CPU is what bounds a shard): every redis.call, table and
-- Lua-side number-to-string conversion shows up in the per-admission cost, so the hot
-- paths read with one HMGET, write with one HSET, format with string.format and reuse
-- field-name strings.
local CFG, USE, EXP, LEASE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local SENTINEL_SCORE = 9000000000000000
local REAP_BATCH = 128

local function num(v)
  local n = tonumber(v)
  if n == nil or n < 0 then return 0 end
  return n
end

-- lease meta: fn|expires|fence|ttl|groups(csv)|granted
local META = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'

-- Refresh backstop TTLs at most once an hour; the first time, plant the sentinels.
local function backstop(bk, now)
  if bk and now - bk < 3600000 then return nil end
  if not bk then
    redis.call('ZADD', EXP, SENTINEL_SCORE, '')
    redis.call('HSET', LEASE, '', '')
  end
  redis.call('PEXPIRE', USE, BACKSTOP_MS)
  redis.call('PEXPIRE', EXP, BACKSTOP_MS)
  redis.call('PEXPIRE', LEASE, BACKSTOP_MS)
  return now
end

-- Remove leases from the lease hash and the expiry zset and add what they held to `delta`
-- (field -> change); expired ones are also counted per function.
local function drop_leases(ids, metas, delta, expired)
  for _, m in ipairs(metas) do
    if m then
      local fn, _, _, _, gs = string.match(m, META)
      delta['a'] = (delta['a'] or 0) - 1
      delta['f:' .. fn] = (delta['f:' .. fn] or 0) - 1
      for g in string.gmatch(gs, '[^,]+') do delta['g:' .. g] = (delta['g:' .. g] or 0) - 1 end
      if expired then delta['x:' .. fn] = (delta['x:' .. fn] or 0) + 1 end
    end
  end
  redis.call('HDEL', LEASE, unpack(ids))
  redis.call('ZREM', EXP, unpack(ids))
end

local function apply_delta(delta)
  for k, d in pairs(delta) do
    if redis.call('HINCRBY', USE, k, d) < 0 then redis.call('HSET', USE, k, 0) end
  end
end

-- Reap every lease whose expiry has passed (bounded batches) and store the new reap bound.
local function reap(now)
  for _ = 1, 8 do
    local ids = redis.call('ZRANGEBYSCORE', EXP, '-inf', now, 'LIMIT', 0, REAP_BATCH)
    if #ids == 0 then break end
    local delta = {}
    drop_leases(ids, redis.call('HMGET', LEASE, unpack(ids)), delta, true)
    apply_delta(delta)
    if #ids < REAP_BATCH then break end
  end
  local first = redis.call('ZRANGE', EXP, 0, 0, 'WITHSCORES')
  local bound = SENTINEL_SCORE
  if first[2] then bound = tonumber(first[2]) end
  redis.call('HSET', USE, 'reap', bound)
  return bound
end

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
