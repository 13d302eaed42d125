-- common.lua — prepended to every lease script (not registered on its own).
-- Names and formats: guard/wire.py (field names, packed layouts, ARGV and replies); key
-- names: guard/keys.py. The loader
-- (guard/store.py) puts the constants DEFAULT_TTL_MS, BACKSTOP_MS, IDLE_MS, MAX_NAMED,
-- MAX_PENDING, FENCE_BLOCK, TICKET_MS and OTHER (guard/keys.py) on the line before.
--
-- Key layout (one namespace = one hash tag, so one script sees every level):
--   KEYS[1] guard:{ns}:cfg   hash: settings (JSON docs) and compiled admission plans
--   KEYS[2] guard:{ns}:use   hash: in-use counters per level, counters for metrics,
--                                   bookkeeping (fence, reap bound, backstop stamp, waiters)
--   KEYS[3] guard:{ns}:exp   zset: lease id -> expires_at (ms, server time)
--   KEYS[4] guard:{ns}:lease hash: lease id -> meta (see META)
--   (derived) guard:{ns}:q:<fn>, guard:{ns}:qd:<fn> zsets: the function's waiting queue
--                                   (tickets; see acquire_lease.lua "Waiting queue")
--   (derived) guard:{ns}:r:k:<fn>|<key> string: GCRA state of a key's rate (its theoretical
--                                   arrival time, µs, struct '>d'), expiring at that time (then
--                                   the key is back to its full burst; keys.rate_key)
--   (derived) guard:{ns}:idle zset: function with no plan -> its cleanup deadline (ms: last
--                                   acquire + IDLE_MS), for at most MAX_NAMED names (see
--                                   "Unconfigured functions")
-- Field names in guard:{ns}:use:
--   a          account in use          f:<fn>   function in use     g:<grp>  group in use
--   n:<fn>     grants                  x:<fn>   expired (reaped)    u:<fn>   fail-open runs
--   t:<fn>|<scope>  throttles          s:<fn>|<scope>  shadow throttles
--   h:<fn>     EWMA of hold time (ms)  fence    last fence issued (floor: cfg field fh)
--   k:<fn>|<key>, kg:<grp>|<key>  in use of a key at a function / in a group (only where a
--              key limit applies; deleted at 0)
--   r:a, r:g:<grp>, r:f:<fn>  GCRA state (arrival time, µs, struct '>d') of a rate level
--   reap       lower bound of the earliest lease expiry (skip reaping while now < reap)
--   wu         waiters registered until (ms): releases publish while now < wu
--   w:<fn>     latest ticket deadline of fn's waiting queue (ms); 0 or past: no queue
--   o:<fn>     waits that ran out (timed out) for fn
--   ep, qu, mt failover quarantine (only with it on): server run_id last seen, grants refused
--              until qu (ms), longest TTL granted (ms) — see acquire_lease.lua
--   ""         sentinel (see below)
-- Field of guard:{ns}:cfg written here (not by admin writes, which keep it):
--   fh         fence high-water mark: every fence issued while the config exists is <= fh,
--              the end of the FENCE_BLOCK-aligned block holding the last fence. Written by
--              the first config write (write_config.lua, from the fence in use) and by each
--              grant that starts a new block (one cfg write per FENCE_BLOCK grants). When the
--              use hash is lost (its idle backstop), fences go on from fh + 1.
-- Unconfigured functions (no plan p:f:<fn>): their counters are kept under their own name
-- for at most MAX_NAMED names at a time (listed in guard:{ns}:idle with their cleanup deadline); the
-- leases of any further name are counted under OTHER ("~other", not a valid name), marked in
-- their meta by a '~' before the function name. A listed name idle for IDLE_MS (and holding
-- no lease) has its counters deleted by the next reap pass.
-- Sentinels: the use hash, lease hash and exp zset each hold one entry named "" or SENTINEL
-- whose value/name is longer than 64 bytes. That keeps the keys from ever being emptied (so
-- they keep their backstop TTL) and makes Redis use its hashtable/skiplist encodings from
-- the start: field lookups stay O(1) instead of scanning a listpack on every admission.
--
-- Cost notes (Redis main-thread CPU is what bounds a shard): every redis.call, table and
-- Lua-side number-to-string conversion shows up in the per-admission cost, so the hot
-- paths read with one HMGET, write with one HSET, pack numbers with struct and reuse
-- field-name strings.
local CFG, USE, EXP, LEASE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- guard:{ns}:idle is derived from the use key, string.sub(USE, 1, -4) .. 'idle', by the rule
-- of guard/keys.py `idle_key` (same hash tag, so the same slot), where a rare path needs it:
-- passing it as a fifth key would cost every call (Redis's KEYS table outgrows its four
-- slots). Likewise the helpers below capture as few chunk locals as they can: each captured
-- local (upvalue) costs on every call of every script.
local SENTINEL_SCORE = 9000000000000000
local SENTINEL = string.rep('~', 65)
local REAP_BATCH = 128

local function num(v)
  local n = tonumber(v)
  if n == nil or n < 0 then return 0 end
  return n
end

-- Lease meta: struct.pack(META, expires_ms, granted_ms, fence, ttl_ms, #fn, fn) .. groups_csv
-- .. key part (binary: packing and unpacking numbers this way skips Lua's slow number<->text
-- paths). fn is '~' .. function for a lease counted under OTHER. The key part (only for a
-- lease whose key was counted at some level) is ",\0", "1" or "0" (counted at the function:
-- k:<fn>|<key>), the key, then "\0" .. group for each group it was counted in
-- (kg:<group>|<key>); wire.META_KEY_MARK.
local META = '>ddiiBc0'

-- fn, expires, fence, ttl, groups_csv, granted, counter name (fn or OTHER), stored name, key
-- part ("" when none)
local function meta_of(m)
  local e, gr, f, t, sfn, pos = struct.unpack(META, m)
  local gs, kt = string.sub(m, pos), ''
  local cut = string.find(gs, ',\0', 1, true)
  if cut then gs, kt = string.sub(gs, 1, cut - 1), string.sub(gs, cut) end
  if string.byte(sfn, 1) == 126 then  -- '~': counted under OTHER (literal: no upvalue)
    return string.sub(sfn, 2), e, f, t, gs, gr, '~other', sfn, kt
  end
  return sfn, e, f, t, gs, gr, sfn, sfn, kt
end

-- The use-hash fields a lease's key part (kt, see meta_of) was counted in: "1" or "0" (at the
-- function), the key, then "\0" group each. Written out where it is needed (release_lease.lua,
-- drop_leases below): every local function here is a closure made on every script call.
-- Those fields are deleted when they reach 0 (an idle key leaves nothing).

-- Plant the sentinels (idempotent) and refresh the backstop TTLs. Runs on every reap pass
-- (so at least once per lease lifetime while a namespace has traffic) and on renew, which
-- keeps the keys alive as long as any lease can be: BACKSTOP_MS is far above the longest
-- lease TTL.
local function backstop()
  redis.call('HSET', USE, '', SENTINEL)
  redis.call('HSET', LEASE, '', SENTINEL)
  redis.call('ZADD', EXP, SENTINEL_SCORE, SENTINEL)
  redis.call('PEXPIRE', USE, BACKSTOP_MS)
  redis.call('PEXPIRE', EXP, BACKSTOP_MS)
  redis.call('PEXPIRE', LEASE, BACKSTOP_MS)
  redis.call('PEXPIRE', string.sub(USE, 1, -4) .. 'idle', BACKSTOP_MS)
end

-- Remove leases from the lease hash and the expiry zset and add what they held to `delta`
-- (field -> change); expired ones are also counted per function.
local function drop_leases(ids, metas, delta, expired)
  for i = 1, #ids do
    local m = metas[i]
    if m then
      local _, _, _, _, gs, _, cn, _, kt = meta_of(m)
      delta['a'] = (delta['a'] or 0) - 1
      delta['f:' .. cn] = (delta['f:' .. cn] or 0) - 1
      for g in string.gmatch(gs, '[^,]+') do delta['g:' .. g] = (delta['g:' .. g] or 0) - 1 end
      if kt ~= '' then  -- the key's counters (see meta_of)
        local key
        for part in string.gmatch(string.sub(kt, 3), '[^%z]+') do
          local k
          if not key then
            key = string.sub(part, 2)
            if string.byte(part) == 49 then k = 'k:' .. cn .. '|' .. key end
          else
            k = 'kg:' .. part .. '|' .. key
          end
          if k then delta[k] = (delta[k] or 0) - 1 end
        end
      end
      if expired then delta['x:' .. cn] = (delta['x:' .. cn] or 0) + 1 end
    end
  end
  redis.call('HDEL', LEASE, unpack(ids))
  redis.call('ZREM', EXP, unpack(ids))
end

-- A counter below 0 was missing (a cleaned name): missing means 0, so it is not re-created.
-- A key's counter (k:/kg:, first byte 'k') is deleted at 0.
local function apply_delta(delta)
  for k, d in pairs(delta) do
    local v = redis.call('HINCRBY', USE, k, d)
    if v < 0 or (v == 0 and string.byte(k) == 107) then redis.call('HDEL', USE, k) end
  end
end

-- Reap every lease whose expiry has passed (bounded batches), clean idle names and store the
-- new reap bound: the earliest lease expiry or idle deadline. (Helpers used off the hot path
-- are written inline where they are used: creating a closure costs on every script call.)
local function reap(now)
  for _ = 1, 8 do
    local ids = redis.call('ZRANGEBYSCORE', EXP, '-inf', now, 'LIMIT', 0, REAP_BATCH)
    if #ids == 0 then break end
    local delta = {}
    drop_leases(ids, redis.call('HMGET', LEASE, unpack(ids)), delta, true)
    apply_delta(delta)
    if #ids < REAP_BATCH then break end
  end
  -- Delete the counters of listed names past their idle deadline (one batch per pass). A
  -- name that still holds a lease (renewed all along) is looked at again in an hour; one
  -- configured since is only unlisted.
  local idle = string.sub(USE, 1, -4) .. 'idle'
  local names = redis.call('ZRANGEBYSCORE', idle, '-inf', now, 'LIMIT', 0, REAP_BATCH)
  for _, n in ipairs(names) do
    if (tonumber(redis.call('HGET', USE, 'f:' .. n)) or 0) > 0 then
      redis.call('ZADD', idle, now + 3600000, n)
    else
      if redis.call('HEXISTS', KEYS[1], 'p:f:' .. n) == 0 then
        -- every counter an unconfigured function can have (no groups, no limit of its own);
        -- the same list as in read_usage.lua
        redis.call('HDEL', USE, 'f:' .. n, 'n:' .. n, 'x:' .. n, 'u:' .. n, 'h:' .. n,
                   'w:' .. n, 'o:' .. n, 't:' .. n .. '|account', 't:' .. n .. '|quarantine',
                   't:' .. n .. '|function')
      end
      redis.call('ZREM', idle, n)
    end
  end
  backstop()
  local bound = tonumber(redis.call('ZRANGE', EXP, 0, 0, 'WITHSCORES')[2])
  local due = tonumber(redis.call('ZRANGE', idle, 0, 0, 'WITHSCORES')[2])
  if due and due < bound then bound = due end
  redis.call('HSET', USE, 'reap', bound)
end

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
