-- acquire_lease.lua — admission: grant one lease to a function if every level has room.
-- KEYS[1..4] cfg, use, exp, lease (see common.lua)
-- ARGV[1] function name
-- ARGV[2] lease id (chosen by the client; a retry with the same id returns the same lease)
-- ARGV[3] requested ttl in ms (0: the function's lease_ttl_seconds); capped by that setting
-- ARGV[4] wait in ms: > 0 registers a waiter, so releases publish on ARGV[6] until then
-- ARGV[5] fail-open runs the client counted while the store was out of reach: "fn=n,fn=n"
-- ARGV[6] release channel
-- ARGV[7] "1": failover quarantine on (see the block "Failover quarantine" below), else ""
-- returns {1, fence, expires_ms, ttl_ms, groups_csv, on_unavailable, shadow_scope}
--      or {0, scope, retry_after_ms, on_unavailable}
--   scope: "function" | "group:<name>" | "account" | "quarantine"; on_unavailable: "open" | "closed" | ""
local fn, id = ARGV[1], ARGV[2]
local f_use, f_grants = 'f:' .. fn, 'n:' .. fn

-- The compiled plans (written by write_config.lua from guard/model.py):
--   p:ns   = "<max>|<grp>=<reserved>,..."                  (groups with reserved > 0)
--   p:f:fn = "<max>|<ttl_ms>|<e|s>|<o|c|>|<grp>=<max>=<e|s>,..."  (groups fn belongs to)
-- An empty max means unlimited. A function with no plan has no limit of its own.
local plan = redis.call('HMGET', CFG, 'p:ns', 'p:f:' .. fn)
local ns_max, f_max, f_shadow, onu, ttl_cap, gplan = nil, nil, false, '', DEFAULT_TTL_MS, ''
local fields = {'fence', 'reap', 'bk', 'wu', 'a', f_use, f_grants, 'h', 'h:' .. fn}
local BASE = 9
local gname, gmax, gshadow, own = {}, {}, {}, {}
if plan[2] then
  local m, t, md, ou
  m, t, md, ou, gplan = string.match(plan[2], '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  f_max, ttl_cap, f_shadow = tonumber(m), tonumber(t), md == 's'
  if ou == 'o' then onu = 'open' elseif ou == 'c' then onu = 'closed' end
  for g, gm, gmd in string.gmatch(gplan, '([^,=]+)=([^,=]*)=([es])') do
    local i = #gname + 1
    gname[i], gmax[i], gshadow[i], own[g] = g, tonumber(gm), gmd == 's', true
    fields[BASE + i] = 'g:' .. g
  end
end
local NG = #gname
-- Unused reserve of groups this function is not in is held back from it (S2).
local rname, rres = {}, {}
if plan[1] then
  local m, rs = string.match(plan[1], '^([^|]*)|(.*)$')
  ns_max = tonumber(m)
  for g, r in string.gmatch(rs, '([^,=]+)=(%d+)') do
    if not own[g] then
      local i = #rname + 1
      rname[i], rres[i] = g, tonumber(r)
      fields[BASE + NG + i] = 'g:' .. g
    end
  end
end

-- Failover quarantine (ARGV[7] == "1"; docs/guarantees.md). The epoch is the serving
-- process's run_id, read here (not passed by a client). When it differs from the one stored
-- in `ep`, this is a promoted replica or a restarted server that may have lost recent lease
-- writes, so every grant is refused until `qu` = now + the longest lease TTL the namespace
-- can hold (max of the plans' caps and `mt`, the longest TTL granted with quarantine on).
-- A retried acquire of a lease that is still held is answered as usual.
local q_mt
if ARGV[7] == '1' then
  local q = redis.call('HMGET', USE, 'ep', 'qu', 'mt')
  local ep = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  local qu = num(q[2])
  q_mt = num(q[3])
  if q[1] ~= ep then
    if q[1] then
      local longest = q_mt
      local c = redis.call('HGETALL', CFG)
      for i = 1, #c, 2 do
        local cap = string.match(c[i], '^p:f:') and tonumber(string.match(c[i + 1], '^[^|]*|(%d+)|'))
        if cap and cap > longest then longest = cap end
      end
      if longest == 0 then longest = DEFAULT_TTL_MS end
      qu = now + longest
      redis.call('HSET', USE, 'ep', ep, 'qu', qu)
    else
      redis.call('HSET', USE, 'ep', ep)
    end
  end
  if now < qu then
    local m = redis.call('HGET', LEASE, id)
    if m then
      local lfn, e, f, t, gs = string.match(m, META)
      if lfn == fn and tonumber(e) > now then return {1, f, e, t, gs, onu, ''} end
    end
    redis.call('HINCRBY', USE, 't:' .. fn .. '|quarantine', 1)
    return {0, 'quarantine', qu - now, onu}
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
local in_a, in_f = num(u[5]), num(u[6])
if f_max and in_f >= f_max then
  if f_shadow then shadow = 0 else refuse, in_level, level_max = 0, in_f, f_max end
end
for i = 1, NG do
  local used = num(u[BASE + i])
  if not refuse and gmax[i] and used >= gmax[i] then
    if f_shadow or gshadow[i] then
      shadow = shadow or i
    else
      refuse, in_level, level_max = i, used, gmax[i]
    end
  end
end
if not refuse and ns_max then
  local used = in_a
  for i = 1, #rname do
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
  -- A retried acquire of a lease that is already held is not a new admission.
  local m = redis.call('HGET', LEASE, id)
  if m then
    local lfn, e, f, t, gs = string.match(m, META)
    if lfn == fn and tonumber(e) > now then return {1, f, e, t, gs, onu, ''} end
  end
  local scope = scope_of(refuse)
  redis.call('HINCRBY', USE, 't:' .. fn .. '|' .. scope, 1)
  -- retry_after: the expected time until enough leases at the refusing level are released,
  -- estimated as mean hold time (EWMA of observed holds: the function's own for the
  -- function level, the namespace's otherwise) times the share of holders that must leave,
  -- (in_use - max + 1) / in_use. With no history yet: until the earliest lease expiry.
  -- A max of 0 waits for an operator, so it gets a long hint. Clamped to [10 ms, 60 s].
  local hold = tonumber(u[8])
  if refuse == 0 then hold = tonumber(u[9]) end
  local retry
  if level_max == 0 then
    retry = 5000
  elseif hold then
    retry = hold * (in_level - level_max + 1) / in_level
  else
    local first = redis.call('ZRANGE', EXP, 0, 0, 'WITHSCORES')
    retry = (tonumber(first[2]) or now + 1000) - now
  end
  retry = math.floor(math.min(math.max(retry, 10), 60000))
  local wait = tonumber(ARGV[4])
  if wait > 0 and num(u[4]) < now + wait then redis.call('HSET', USE, 'wu', now + wait) end
  return {0, scope, retry, onu}
end

local ttl = tonumber(ARGV[3])
if ttl <= 0 or ttl > ttl_cap then ttl = ttl_cap end
local fence = num(u[1]) + 1
local expires = now + ttl
local gcsv = string.gsub(gplan, '=[^,]*', '')
local meta = string.format('%s|%d|%d|%d|%s|%d', fn, expires, fence, ttl, gcsv, now)
if redis.call('HSETNX', LEASE, id, meta) == 0 then
  -- Retry of an acquire that was granted (its lease is live: expired ones were reaped above).
  local lfn, e, f, t, gs = string.match(redis.call('HGET', LEASE, id), META)
  if lfn ~= fn then return redis.error_reply('CONFLICT lease id is held by another function') end
  return {1, f, e, t, gs, onu, ''}
end
redis.call('ZADD', EXP, expires, id)
local set = {'fence', fence, 'a', in_a + 1, f_use, in_f + 1, f_grants, num(u[7]) + 1}
for i = 1, NG do
  set[7 + 2 * i] = fields[BASE + i]
  set[8 + 2 * i] = num(u[BASE + i]) + 1
end
if expires < num(u[2]) then
  set[#set + 1] = 'reap'
  set[#set + 1] = expires
end
local bk = backstop(tonumber(u[3]), now)
if bk then
  set[#set + 1] = 'bk'
  set[#set + 1] = bk
end
if q_mt and ttl > q_mt then  -- quarantine: the longest TTL granted (see above)
  set[#set + 1] = 'mt'
  set[#set + 1] = ttl
end
redis.call('HSET', USE, unpack(set))
if shadow then redis.call('HINCRBY', USE, 's:' .. fn .. '|' .. scope_of(shadow), 1) end
if ARGV[5] ~= '' then
  for pfn, n in string.gmatch(ARGV[5], '([^,=]+)=(%d+)') do redis.call('HINCRBY', USE, 'u:' .. pfn, n) end
end
return {1, fence, expires, ttl, gcsv, onu, shadow and scope_of(shadow) or ''}
