-- acquire_lease.lua — admission: grant one lease to a function if every level has room.
-- KEYS[1..4] cfg, use, exp, lease (see common.lua)
-- ARGV[1] function name
-- ARGV[2] lease id (chosen by the client; a retry with the same id returns the same lease)
-- ARGV[3] requested ttl in ms (0: the function's lease_ttl_seconds); capped by that setting
-- ARGV[4] optional: wait in ms; > 0 registers a waiter, so releases publish until then
-- ARGV[5] optional: fail-open runs the client counted while the store was out of reach,
--         "fn=n,fn=n"
-- ARGV[6] optional: "1" turns the failover quarantine on (see "Failover quarantine")
-- returns {fence, expires_ms, ttl_ms, groups_csv, on_unavailable, shadow_scope, cfg_version}
--      (fence >= 1) or {0, scope, retry_after_ms, on_unavailable, cfg_version}
--   cfg_version: the config's version, "" when the namespace has no config at all (never
--   configured, or the store was reset: the client tells the two apart)
--   scope: "function" | "group:<name>" | "account" | "quarantine"
--   on_unavailable: "open" | "closed" | ""
local fn, id = ARGV[1], ARGV[2]
local f_use, f_grants = 'f:' .. fn, 'n:' .. fn

-- The compiled plans (written by write_config.lua, packed by guard/model.py `plans`), in
-- struct.pack formats because unpacking them is far cheaper than Lua patterns + tonumber:
--   p:ns   = '>iB' max, n; then n x '>iBc0' reserved, name   (groups with reserved > 0);
--            then the temporary overrides (guard/overrides.py; none: nothing more), each
--            "\0" kind ("f" | "g") name "\0" max ":" until_ms ";" in text
--   p:f:fn = '>iiBBB' max, ttl_ms, shadow, on_unavailable (0 unset, 1 open, 2 closed), n;
--            then n x '>iBBc0' group max, group shadow, name  (the groups fn belongs to)
-- A max of -1 means unlimited. A function with no plan has no limit of its own.
local plan = redis.call('HMGET', CFG, 'p:ns', 'p:f:' .. fn, 'v')
local cfgv = plan[3] or ''
local ns_max, f_max, f_shadow, onu, ttl_cap = -1, -1, false, '', DEFAULT_TTL_MS
local fields = {'fence', 'reap', 'a', f_use, f_grants}
local BASE = 5
local gname, gmax, gshadow, own, NG = {}, {}, {}, {}, 0
if plan[2] then
  local md, ou, pos
  f_max, ttl_cap, md, ou, NG, pos = struct.unpack('>iiBBB', plan[2])
  f_shadow = md == 1
  if ou == 1 then onu = 'open' elseif ou == 2 then onu = 'closed' end
  for i = 1, NG do
    local gm, gmd, g
    gm, gmd, g, pos = struct.unpack('>iBBc0', plan[2], pos)
    gname[i], gmax[i], gshadow[i], own[g] = g, gm, gmd == 1, true
    fields[BASE + i] = 'g:' .. g
  end
end
-- Unused reserve of groups this function is not in is held back from it (S2).
local rres = {}
if plan[1] then
  local nr, pos
  ns_max, nr, pos = struct.unpack('>iB', plan[1])
  for _ = 1, nr do
    local r, g
    r, g, pos = struct.unpack('>iBc0', plan[1], pos)
    if not own[g] then
      rres[#rres + 1] = r
      fields[BASE + NG + #rres] = 'g:' .. g
    end
  end
  -- A temporary override replaces the max of its function or group until its deadline
  -- (server time: nothing has to run when it ends). The mode (enforce/shadow) stays. Only
  -- this function's and its groups' entries are looked up (plain find: C speed), so the
  -- cost does not grow with the number of overrides in force.
  local p = plan[1]
  if pos <= #p then
    local function override(key)
      local _, e = string.find(p, key, pos, true)
      if not e then return nil end
      local m, untl = string.match(p, '^(%d+):(%d+);', e + 1)
      if tonumber(untl) > now then return tonumber(m) end
      return nil
    end
    f_max = override('\0f' .. fn .. '\0') or f_max
    for i = 1, NG do gmax[i] = override('\0g' .. gname[i] .. '\0') or gmax[i] end
  end
end

-- A retried acquire of a lease that is already held is not a new admission: its reply,
-- or nil. (Only refusal paths need this; a grant finds out through HSETNX.)
local function held_reply()
  local m = redis.call('HGET', LEASE, id)
  if m then
    local lfn, e, f, t, gs = meta_of(m)
    if lfn == fn and e > now then return {f, e, t, gs, onu, '', cfgv} end
  end
  return nil
end

-- Failover quarantine (ARGV[6] == "1"; docs/guarantees.md). The epoch is the serving
-- process's run_id, read here (not passed by a client). When it differs from the one stored
-- in `ep`, this is a promoted replica or a restarted server that may have lost recent lease
-- writes, so every grant is refused until `qu` = now + the longest lease TTL the namespace
-- can hold (max of the plans' caps and `mt`, the longest TTL granted with quarantine on).
-- A retried acquire of a lease that is still held is answered as usual.
local q_mt
if ARGV[6] == '1' then
  local q = redis.call('HMGET', USE, 'ep', 'qu', 'mt')
  local ep = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  local qu = num(q[2])
  q_mt = num(q[3])
  if q[1] ~= ep then
    if q[1] then
      local longest = q_mt
      local c = redis.call('HGETALL', CFG)
      for i = 1, #c, 2 do
        if string.sub(c[i], 1, 4) == 'p:f:' then
          local cap = select(2, struct.unpack('>ii', c[i + 1]))
          if cap > longest then longest = cap end
        end
      end
      if longest == 0 then longest = DEFAULT_TTL_MS end
      qu = now + longest
      redis.call('HSET', USE, 'ep', ep, 'qu', qu)
    else
      redis.call('HSET', USE, 'ep', ep)
    end
  end
  if now < qu then
    local again = held_reply()
    if again then return again end
    redis.call('HINCRBY', USE, 't:' .. fn .. '|quarantine', 1)
    return {0, 'quarantine', qu - now, onu, cfgv}
  end
end

-- One HMGET reads every counter this decision needs.
local u = redis.call('HMGET', USE, unpack(fields))
if not u[2] or tonumber(u[2]) <= now then
  reap(now)
  u = redis.call('HMGET', USE, unpack(fields))
end

-- Check every level; the first enforcing refusal wins, a shadow one is only counted.
-- A refusal records the level's index (0 function, 1..NG groups, -1 account).
local refuse, shadow, in_level, level_max = nil, nil, 0, 0
local in_a, in_f = num(u[3]), num(u[4])
if f_max >= 0 and in_f >= f_max then
  if f_shadow then shadow = 0 else refuse, in_level, level_max = 0, in_f, f_max end
end
for i = 1, NG do
  local used = num(u[BASE + i])
  if not refuse and gmax[i] >= 0 and used >= gmax[i] then
    if f_shadow or gshadow[i] then
      shadow = shadow or i
    else
      refuse, in_level, level_max = i, used, gmax[i]
    end
  end
end
if not refuse and ns_max >= 0 then
  local used = in_a
  for i = 1, #rres do
    local unused = rres[i] - num(u[BASE + NG + i])
    if unused > 0 then used = used + unused end
  end
  if used >= ns_max then
    if f_shadow then shadow = shadow or -1 else refuse, in_level, level_max = -1, used, ns_max end
  end
end

local function scope_of(i)
  if i == 0 then return 'function' elseif i == -1 then return 'account' end
  return 'group:' .. gname[i]
end

if refuse then
  local again = held_reply()
  if again then return again end
  local scope = scope_of(refuse)
  local r = redis.call('HMGET', USE, 'h:' .. fn, 'wu')
  redis.call('HINCRBY', USE, 't:' .. fn .. '|' .. scope, 1)
  -- retry_after: the expected time until enough leases at the refusing level are released,
  -- estimated as this function's mean hold time (EWMA of its observed holds) times the
  -- share of holders that must leave, (in_use - max + 1) / in_use. With no history yet:
  -- until the earliest lease expiry in the namespace. A max of 0 waits for an operator,
  -- so it gets a long hint. Clamped to [10 ms, 60 s].
  local hold, retry = tonumber(r[1]), nil
  if level_max == 0 then
    retry = 5000
  elseif hold then
    retry = hold * (in_level - level_max + 1) / in_level
  else
    local first = redis.call('ZRANGE', EXP, 0, 0, 'WITHSCORES')
    retry = (tonumber(first[2]) or now + 1000) - now
  end
  retry = math.floor(math.min(math.max(retry, 10), 60000))
  local wait = tonumber(ARGV[4] or 0)
  if wait > 0 and num(r[2]) < now + wait then redis.call('HSET', USE, 'wu', now + wait) end
  return {0, scope, retry, onu, cfgv}
end

local ttl = tonumber(ARGV[3])
if ttl <= 0 or ttl > ttl_cap then ttl = ttl_cap end
local fence = num(u[1]) + 1
local expires = now + ttl
local gcsv = table.concat(gname, ',')
local meta = struct.pack(META, expires, now, fence, ttl, #fn, fn) .. gcsv
if redis.call('HSETNX', LEASE, id, meta) == 0 then
  -- Retry of an acquire that was granted (its lease is live: expired ones were reaped above).
  local lfn, e, f, t, gs = meta_of(redis.call('HGET', LEASE, id))
  if lfn ~= fn then return redis.error_reply('CONFLICT lease id is held by another function') end
  return {f, e, t, gs, onu, '', cfgv}
end
redis.call('ZADD', EXP, expires, id)
local set = {'fence', fence, 'a', in_a + 1, f_use, in_f + 1, f_grants, num(u[5]) + 1}
for i = 1, NG do
  set[7 + 2 * i] = fields[BASE + i]
  set[8 + 2 * i] = num(u[BASE + i]) + 1
end
if expires < tonumber(u[2]) then
  set[#set + 1] = 'reap'
  set[#set + 1] = expires
end
if q_mt and ttl > q_mt then  -- quarantine: the longest TTL granted (see above)
  set[#set + 1] = 'mt'
  set[#set + 1] = ttl
end
redis.call('HSET', USE, unpack(set))
if shadow then redis.call('HINCRBY', USE, 's:' .. fn .. '|' .. scope_of(shadow), 1) end
if ARGV[5] then
  for pfn, n in string.gmatch(ARGV[5], '([^,=]+)=(%d+)') do redis.call('HINCRBY', USE, 'u:' .. pfn, n) end
end
return {fence, expires, ttl, gcsv, onu, shadow and scope_of(shadow) or '', cfgv}
