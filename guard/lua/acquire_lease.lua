-- acquire_lease.lua — admission: grant one lease to a function if every level has room.
-- KEYS[1..4] cfg, use, exp, lease (see common.lua; guard:{ns}:idle is derived)
-- ARGV[1] function name
-- ARGV[2] lease id (chosen by the client; a retry with the same id returns the same lease)
-- ARGV[3] requested ttl in ms (0: the function's lease_ttl_seconds); capped by that setting
-- ARGV[4] optional: wait in ms; > 0 registers a waiter, so releases publish until then
-- ARGV[5] optional: fail-open runs the client counted while the store was out of reach,
--         "fn=n,fn=n" (at most MAX_PENDING names are read; guard/store.py refuses more).
--         Recorded with every reply but an error: a refusal carries them too. Names the
--         namespace does not know (no plan, not listed, not ARGV[1]) are added up under OTHER.
-- ARGV[6] optional: "1" turns the failover quarantine on (see "Failover quarantine")
-- ARGV[7] optional: "1" refuses a namespace with no config: returns {-1}, writes nothing
-- ARGV[8] optional: "1" marks the last attempt of a wait that ran out: a refusal drops the
--         caller's ticket and counts a timed-out wait (o:<fn>)
-- ARGV[9] optional: the key (per tenant, customer, API key; the name rule): checked against
--         the key limits and key rate of the function and its groups ("Keys and rates")
-- Waiting queue (first come, first served; docs/ARCHITECTURE.md "Waiting queue"): a refused
-- acquire with ARGV[4] > 0 takes (or refreshes) a ticket under its lease id in
--   guard:{ns}:q:<fn>  zset: lease id -> when it first queued (µs, server time): the order
--   guard:{ns}:qd:<fn> zset: lease id -> when the ticket lapses: min(now + wait, now +
--                      TICKET_MS), refreshed by each retry (a waiter retries at least every
--                      TICKET_MS / 3), so an abandoned ticket lapses within TICKET_MS
-- (<fn> the counter name; both derived from the use key, keys.py `queue_key`) and stamps
-- w:<fn> in the use hash with the latest ticket deadline. While w:<fn> is in the future a
-- grant is only for the oldest live tickets: a caller is admitted when fewer live tickets
-- are ahead of it (all of them, for a caller without one) than the function has free
-- slots (1 when it has no limit of its own); else it is refused with scope "function".
-- While w:<fn> is past (nobody waits for it) the queue is not touched.
-- returns {fence, expires_ms, ttl_ms, groups_csv, on_unavailable, shadow_scope, cfg_version}
--      (errors: "CONFLICT ..." lease id held by another function; "PROTOCOL ..." the cfg hash's
--      pv is not this script's PROTOCOL — checked before anything is written)
--      (fence >= 1) or {0, scope, retry_after_ms, on_unavailable, cfg_version} or {-1}
--   A grant is always live when returned: a lease under this id that expired and was not
--   reaped yet is reaped here, and the acquire is a new admission.
--   cfg_version: the config's version, "" when the namespace has no config at all (never
--   configured, or the store was reset: the client tells the two apart)
--   scope: "function" | "group:<name>" | "account" | "quarantine" | "key" |
--          "group-key:<name>" | "rate:account" | "rate:group:<name>" | "rate:function" |
--          "rate:key" (a rate refusal's retry_after_ms is exact: server time until a token)
--   on_unavailable: "open" | "closed" | ""
local fn, id, opt = ARGV[1], ARGV[2], ARGV[4] ~= nil  -- opt: the optional ARGV are there
local key = ARGV[9]  -- nil or "": no key
if key == '' then key = nil end

-- The compiled plans (written by write_config.lua, packed by guard/wire.py), in
-- struct.pack formats because unpacking them is far cheaper than Lua patterns + tonumber:
--   p:ns   = '>iB' max, n; then n x '>iBc0' reserved, name   (groups with reserved > 0);
--            then the temporary overrides (wire.OVERRIDE_ENTRY; none: nothing more), each
--            "\0" kind ("f" | "g") name "\0" max ":" until_ms ";" in text
--   p:f:fn = '>iiBBB' max, ttl_ms, shadow, on_unavailable (0 unset, 1 open, 2 closed), n;
--            then n x '>iBBc0' group max, group shadow, name  (the groups fn belongs to);
--            then, only when fn or one of its groups has a key limit or a rate, the tail
--            '>BiBdddd' 1, key max, has key_overrides, rate interval µs, rate tolerance µs,
--            key rate interval µs, key rate tolerance µs; and n x '>iBdd' group key max, has
--            key_overrides, group rate interval µs, tolerance µs (interval 0: no rate)
--   p:k:fn|key = '>i' that key's cap at fn (key_overrides), read only with a key
-- A max of -1 means unlimited. A function with no plan has no limit of its own.
local plan
if key then
  plan = redis.call('HMGET', CFG, 'p:ns', 'p:f:' .. fn, 'v', 'pv', 'p:k:' .. fn .. '|' .. key)
else
  plan = redis.call('HMGET', CFG, 'p:ns', 'p:f:' .. fn, 'v', 'pv')
end
-- pv: the protocol major of the stored formats (docs/protocol.md "Versioning"); absent means 1
if plan[4] and plan[4] ~= PROTOCOL then
  return redis.error_reply('PROTOCOL namespace holds protocol ' .. plan[4] ..
    ' formats; this client speaks protocol ' .. PROTOCOL .. ': upgrade it')
end
local cfgv = plan[3] or ''
if opt and ARGV[7] == '1' and cfgv == '' then return {-1} end
local ns_max, f_max, f_shadow, onu, ttl_cap = -1, -1, false, '', DEFAULT_TTL_MS

-- Counter name: the function's own, or OTHER beyond MAX_NAMED unconfigured names (common.lua).
local cname, sfn, new_name = fn, fn, false  -- sfn: the name stored in the lease meta
local IDLE  -- guard:{ns}:idle, derived where needed (common.lua)
if not plan[2] then
  IDLE = string.sub(USE, 1, -4) .. 'idle'
  local due = redis.call('ZSCORE', IDLE, fn)  -- its cleanup deadline, kept to the minute
  if due then
    if tonumber(due) < now + IDLE_MS - 60000 then redis.call('ZADD', IDLE, now + IDLE_MS, fn) end
  elseif redis.call('ZCARD', IDLE) < MAX_NAMED or redis.call('HEXISTS', USE, 'f:' .. fn) == 1 then
    redis.call('ZADD', IDLE, now + IDLE_MS, fn)
    redis.call('PEXPIRE', IDLE, BACKSTOP_MS)
    new_name = true
  else
    cname, sfn = OTHER, '~' .. fn
  end
end
local f_use, f_grants = 'f:' .. cname, 'n:' .. cname

local f_wait = 'w:' .. cname
local fields = {'fence', 'reap', 'a', f_use, f_grants, f_wait}
local BASE = 6
local gname, gmax, gshadow, own, NG = {}, {}, {}, {}, 0
-- Keys and rates: KR holds the plan's tail (nil: no key limit and no rate at fn or its groups,
-- and nothing below is read); RL the rate levels this acquire passes (nil: none).
local KR, RL
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
  if pos <= #plan[2] then
    KR = {gk = {}, gko = {}, gT = {}, gTol = {}}
    local _
    _, KR.kmax, KR.kov, KR.fT, KR.fTol, KR.kT, KR.kTol, pos =
      struct.unpack('>BiBdddd', plan[2], pos)
    for i = 1, NG do
      KR.gk[i], KR.gko[i], KR.gT[i], KR.gTol[i], pos = struct.unpack('>iBdd', plan[2], pos)
    end
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
    -- the account rate, when set, is the first entry here: "\0r" interval ":" tolerance ";"
    if string.byte(p, pos + 1) == 114 then
      local aT, aTol = string.match(p, '^r([^:]*):([^;]*);', pos + 1)
      RL = {{'r:a', tonumber(aT), tonumber(aTol), 'rate:account', false}}
    end
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

-- Keys and rates. A key is counted at each level with a key limit (key max >= 0 or
-- key_overrides): its field is read with the level counters (KF, GKF[i]: its index in
-- `fields`) and capped by its override (p:k:, p:kg:) or the level's key max (-1: no cap). The
-- rate levels (account, groups, function, key) are GCRA states, read with one MGET.
local KF, KCAP, GKF, GKCAP
if KR then
  if key then
    if KR.kmax >= 0 or KR.kov == 1 then
      KF, KCAP = #fields + 1, KR.kmax
      fields[KF] = 'k:' .. cname .. '|' .. key
      if KR.kov == 1 and plan[5] then KCAP = struct.unpack('>i', plan[5]) end
    end
    local ov = {}
    for i = 1, NG do
      if KR.gk[i] >= 0 or KR.gko[i] == 1 then
        GKF, GKCAP = GKF or {}, GKCAP or {}
        GKF[i], GKCAP[i] = #fields + 1, KR.gk[i]
        fields[GKF[i]] = 'kg:' .. gname[i] .. '|' .. key
        if KR.gko[i] == 1 then ov[#ov + 1] = i end
      end
    end
    if #ov > 0 then
      local names = {}
      for j = 1, #ov do names[j] = 'p:kg:' .. gname[ov[j]] .. '|' .. key end
      local caps = redis.call('HMGET', CFG, unpack(names))
      for j = 1, #ov do
        if caps[j] then GKCAP[ov[j]] = struct.unpack('>i', caps[j]) end
      end
    end
  end
  for i = 1, NG do
    if KR.gT[i] > 0 then
      RL = RL or {}
      RL[#RL + 1] = {'r:g:' .. gname[i], KR.gT[i], KR.gTol[i], 'rate:group:' .. gname[i],
                     gshadow[i]}
    end
  end
  if KR.fT > 0 then
    RL = RL or {}
    RL[#RL + 1] = {'r:f:' .. cname, KR.fT, KR.fTol, 'rate:function', false}
  end
  if key and KR.kT > 0 then
    RL = RL or {}
    -- a key's state is a key of its own that expires at full burst (an idle key leaves
    -- nothing); [8] false: not a field of the use hash
    RL[#RL + 1] = {string.sub(USE, 1, -4) .. 'r:k:' .. cname .. '|' .. key, KR.kT, KR.kTol,
                   'rate:key', false, nil, nil, false}
  end
end
if RL then  -- [8]: the index in `fields` of a level kept in the use hash (read with the counters)
  for j = 1, #RL do
    if RL[j][8] == nil then
      RL[j][8] = #fields + 1
      fields[RL[j][8]] = RL[j][1]
    end
  end
end

-- Fail-open counts (ARGV[5]): recorded before every reply that is not an error. (Closures
-- are made only where needed: each one costs on every call of the script.)
local count_pending
if opt and ARGV[5] ~= '' then count_pending = function()
  local k = 0
  IDLE = IDLE or string.sub(USE, 1, -4) .. 'idle'
  for pfn, n in string.gmatch(ARGV[5], '([^,=]+)=(%d+)') do
    k = k + 1
    if k > MAX_PENDING then break end
    local name = pfn
    if pfn == fn then
      name = cname
    elseif redis.call('HEXISTS', CFG, 'p:f:' .. pfn) == 0 and not redis.call('ZSCORE', IDLE, pfn) then
      name = OTHER
    end
    redis.call('HINCRBY', USE, 'u:' .. name, n)
  end
end end

-- A retried acquire of a lease that is already held is not a new admission: its reply (or
-- nil), and the meta of an expired lease under this id that no reap pass has removed yet.
local function held_reply()
  local m = redis.call('HGET', LEASE, id)
  if m then
    local lfn, e, f, t, gs = meta_of(m)
    if e <= now then return nil, m end
    if lfn == fn then return {f, e, t, gs, onu, '', cfgv} end
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
if opt and ARGV[6] == '1' then
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
    if count_pending then count_pending() end
    if again then return again end
    redis.call('HINCRBY', USE, 't:' .. cname .. '|quarantine', 1)
    return {0, 'quarantine', qu - now, onu, cfgv}
  end
end

-- One HMGET reads every counter this decision needs.
local u = redis.call('HMGET', USE, unpack(fields))
if not u[2] or tonumber(u[2]) <= now then
  reap(now)
  u = redis.call('HMGET', USE, unpack(fields))
end

-- The rate levels' arrival times ([6], µs, at least now): the account, group and function
-- levels from the counters just read, a key's from its own key.
local now_us
if RL then
  now_us = t[1] * 1000000 + t[2]
  for j = 1, #RL do
    local lv = RL[j]
    local raw = lv[8] and u[lv[8]] or (not lv[8] and redis.call('GET', lv[1]))
    local tat = raw and struct.unpack('>d', raw) or now_us
    lv[6] = tat > now_us and tat or now_us
  end
end

-- Check every level; the first enforcing refusal wins, a shadow one is only counted.
-- A refusal records the level's index (0 function, 1..NG groups, -1 account). A second pass
-- only when a refusal finds an expired lease under this id that no reap pass removed yet:
-- it is reaped (its slot is free) and this acquire is decided as a new one.
-- Keys: "key" checks with the function level (refuse 0 for the retry hint), "group-key:<g>"
-- with group i; rscope names the scope then. A rate refusal (checked only when every
-- concurrency level has room) sets rwait, the exact wait in ms, and the scope of the level
-- needing the longest; a shadow level that would refuse consumes no token (RL[j][7]).
local refuse, shadow, in_level, level_max, rscope, rwait
for pass = 1, 2 do
  refuse, shadow, in_level, level_max, rscope, rwait = nil, nil, 0, 0, nil, nil
  local in_f = num(u[4])
  if f_max >= 0 and in_f >= f_max then
    if f_shadow then shadow = 0 else refuse, in_level, level_max = 0, in_f, f_max end
  end
  if KF and not refuse and KCAP >= 0 and num(u[KF]) >= KCAP then
    if f_shadow then
      shadow = shadow or 'key'
    else
      refuse, in_level, level_max, rscope = 0, num(u[KF]), KCAP, 'key'
    end
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
    if GKF and GKF[i] and not refuse and GKCAP[i] >= 0 and num(u[GKF[i]]) >= GKCAP[i] then
      if f_shadow or gshadow[i] then
        shadow = shadow or 'group-key:' .. gname[i]
      else
        refuse, in_level, level_max, rscope = i, num(u[GKF[i]]), GKCAP[i], 'group-key:' .. gname[i]
      end
    end
  end
  if not refuse and ns_max >= 0 then
    local used = num(u[3])
    for i = 1, #rres do
      local unused = rres[i] - num(u[BASE + NG + i])
      if unused > 0 then used = used + unused end
    end
    if used >= ns_max then
      if f_shadow then shadow = shadow or -1 else refuse, in_level, level_max = -1, used, ns_max end
    end
  end
  if RL and not refuse then
    for j = 1, #RL do  -- GCRA: room while the arrival time is at most the tolerance ahead
      local lv = RL[j]
      local over = lv[6] - now_us - lv[3]
      lv[7] = over > 0
      if over > 0 then
        if f_shadow or lv[5] then
          shadow = shadow or lv[4]
        elseif not rwait or over > rwait then
          rwait, rscope = over, lv[4]
        end
      end
    end
    if rwait then refuse = -9 end
  end
  if not refuse or pass == 2 then break end
  local again, stale = held_reply()
  if again then
    if count_pending then count_pending() end
    return again
  end
  if not stale then break end
  local delta = {}
  drop_leases({id}, {stale}, delta, true)
  apply_delta(delta)
  u = redis.call('HMGET', USE, unpack(fields))
end

-- The waiting queue, only while this function has live tickets (w:<fn> in the future).
local QP, mine, left  -- key prefix "guard:{ns}:"; the caller's rank; live tickets left
if num(u[6]) > now then
  QP = string.sub(USE, 1, -4)
  local Q, QD = QP .. 'q:' .. cname, QP .. 'qd:' .. cname
  local dead = redis.call('ZRANGEBYSCORE', QD, '-inf', now, 'LIMIT', 0, 128)
  if #dead > 0 then
    redis.call('ZREM', Q, unpack(dead))
    redis.call('ZREM', QD, unpack(dead))
  end
  mine = redis.call('ZRANK', Q, id)
  left = redis.call('ZCARD', Q)
  if not refuse then
    local cap = f_max >= 0 and f_max or num(u[4]) + 1
    local free = cap - num(u[4])
    if (mine or left) >= free then  -- older tickets take the free slots first
      refuse, in_level, level_max = 0, num(u[4]) + (mine or left) - free + cap, cap
    end
  end
end

local function scope_of(i)
  if type(i) == 'string' then return i end
  if i == 0 then return 'function' elseif i == -1 then return 'account' end
  return 'group:' .. gname[i]
end

if refuse then
  local scope = rscope or scope_of(refuse)
  local r = redis.call('HMGET', USE, 'h:' .. cname, 'wu')
  redis.call('HINCRBY', USE, 't:' .. cname .. '|' .. scope, 1)
  if new_name and now + IDLE_MS < num(u[2]) then redis.call('HSET', USE, 'reap', now + IDLE_MS) end
  -- retry_after (docs/sdk.md "Throttled and retry_after"): when the k = in_use - max + 1
  -- slots this acquire needs are plausibly free. Each holder at the refusing level frees its
  -- slot at its expiry, or earlier by a release after about this function's usual hold (EWMA
  -- h of its observed holds) — but only while it has been held less than h: one that has
  -- outlived the usual hold is counted to its expiry. The holders are read among the
  -- HINT_SCAN earliest-expiring leases of the namespace; when fewer than k are found there,
  -- the hint is h * k / in_use (else until the earliest expiry). A max of 0 waits for an
  -- operator: 5 s. Clamped to [10 ms, 60 s].
  local hold, retry = tonumber(r[1]), nil
  local k = in_level - level_max + 1
  if rwait then
    retry = -1  -- a rate refusal: exact, set below
  elseif level_max == 0 then
    retry = 5000
  else
    local ex = redis.call('ZRANGE', EXP, 0, 15, 'WITHSCORES')
    local ids = {}
    for i = 1, #ex, 2 do ids[#ids + 1] = ex[i] end
    local frees = {}
    if #ids > 0 then
      local ms = redis.call('HMGET', LEASE, unpack(ids))
      for i = 1, #ids do
        if ms[i] then
          local lfn, e, _, _, gs, gr = meta_of(ms[i])
          local at = refuse == -1 or (refuse == 0 and lfn == fn) or (refuse > 0 and
            string.find(',' .. gs .. ',', ',' .. gname[refuse] .. ',', 1, true) ~= nil)
          if e > now and at then
            if hold and gr + hold > now and gr + hold < e then e = gr + hold end
            frees[#frees + 1] = e
          end
        end
      end
    end
    if #frees >= k then
      table.sort(frees)
      retry = frees[k] - now
    elseif hold then
      retry = hold * k / in_level
    else
      retry = (tonumber(ex[2]) or now + 1000) - now
    end
  end
  -- A queued waiter's turn: the tickets ahead of it, served by the function's slots at its
  -- usual hold (a release that frees its slot wakes it before that by naming its ticket).
  local ahead = mine or left
  if ahead and hold and f_max > 0 then
    local turn = hold * (ahead + 1) / f_max
    if turn > retry then retry = turn end
  end
  retry = math.floor(math.min(math.max(retry, 10), 60000))
  if rwait then retry = math.max(1, math.ceil(rwait / 1000)) end
  local wait = tonumber(ARGV[4] or 0)
  if wait > 0 then
    if num(r[2]) < now + wait then redis.call('HSET', USE, 'wu', now + wait) end
    -- a key or rate refusal takes no ticket: the function's free slots are not what it waits
    -- for, and a ticket would hold them back from other keys (rscope: such a refusal)
    if not rscope then
      QP = QP or string.sub(USE, 1, -4)
      local Q, QD = QP .. 'q:' .. cname, QP .. 'qd:' .. cname
      local due = now + math.min(wait, TICKET_MS)
      redis.call('ZADD', Q, 'NX', t[1] * 1000000 + t[2], id)  -- in µs: ties are rarer
      redis.call('ZADD', QD, due, id)
      redis.call('PEXPIRE', Q, TICKET_MS + 1000)
      redis.call('PEXPIRE', QD, TICKET_MS + 1000)
      if num(u[6]) < due then redis.call('HSET', USE, f_wait, due) end
    end
  elseif ARGV[8] == '1' then  -- the wait ran out: drop the ticket, count a timed-out wait
    QP = QP or string.sub(USE, 1, -4)
    redis.call('ZREM', QP .. 'q:' .. cname, id)
    redis.call('ZREM', QP .. 'qd:' .. cname, id)
    redis.call('HINCRBY', USE, 'o:' .. cname, 1)
  end
  if count_pending then count_pending() end
  return {0, scope, retry, onu, cfgv}
end

local ttl = tonumber(ARGV[3])
if ttl <= 0 or ttl > ttl_cap then ttl = ttl_cap end
-- The fence never goes back while the config exists: when the use hash is lost (idle
-- backstop) it goes on above fh, the reserved high-water mark kept in the cfg hash.
local fence = u[1] and num(u[1]) + 1 or num(redis.call('HGET', CFG, 'fh')) + 1
local expires = now + ttl
local gcsv = table.concat(gname, ',')
local meta = struct.pack(META, expires, now, fence, ttl, #sfn, sfn) .. gcsv
if KF or GKF then  -- the key part (common.lua META): where the key is counted
  local kp = {',\0', KF and '1' or '0', key}
  if GKF then
    for i = 1, NG do
      if GKF[i] then kp[#kp + 1] = '\0' .. gname[i] end
    end
  end
  meta = meta .. table.concat(kp)
end
if redis.call('HSETNX', LEASE, id, meta) == 0 then
  -- Retry of an acquire that was granted: the same lease, if it is still live.
  local old = redis.call('HGET', LEASE, id)
  local lfn, e, f, t, gs = meta_of(old)
  if e > now then
    if lfn ~= fn then return redis.error_reply('CONFLICT lease id is held by another function') end
    if count_pending then count_pending() end
    return {f, e, t, gs, onu, '', cfgv}
  end
  -- Expired but not reaped yet (more leases expired than one reap pass removes): reap it
  -- and grant anew. Reaping only frees slots, so the decision above still holds.
  local delta = {}
  drop_leases({id}, {old}, delta, true)
  apply_delta(delta)
  redis.call('HSET', LEASE, id, meta)
  u = redis.call('HMGET', USE, unpack(fields))
end
redis.call('ZADD', EXP, expires, id)
local set = {'fence', fence, 'a', num(u[3]) + 1, f_use, num(u[4]) + 1, f_grants, num(u[5]) + 1}
for i = 1, NG do
  set[7 + 2 * i] = fields[BASE + i]
  set[8 + 2 * i] = num(u[BASE + i]) + 1
end
if not u[2] or expires < tonumber(u[2]) then
  set[#set + 1] = 'reap'
  set[#set + 1] = expires
end
if QP then  -- granted while the function has a queue: drop the caller's ticket
  if mine then
    redis.call('ZREM', QP .. 'q:' .. cname, id)
    redis.call('ZREM', QP .. 'qd:' .. cname, id)
    left = left - 1
  end
  if left == 0 then  -- nobody waits for this function now: back to the plain path
    set[#set + 1] = f_wait
    set[#set + 1] = 0
  elseif f_max < 0 or num(u[4]) + 1 < f_max then
    -- room is left: wake the next ticket (a release woke this one for one freed slot; two
    -- releases in a row may have named the same oldest ticket)
    local nxt = redis.call('ZRANGE', QP .. 'q:' .. cname, 0, 0)[1]
    if nxt then redis.call('PUBLISH', QP .. 'released', fn .. '|' .. nxt) end
  end
end
if KF then
  set[#set + 1] = fields[KF]
  set[#set + 1] = num(u[KF]) + 1
end
if GKF then
  for i = 1, NG do
    if GKF[i] then
      set[#set + 1] = fields[GKF[i]]
      set[#set + 1] = num(u[GKF[i]]) + 1
    end
  end
end
if RL then  -- one token at every rate level passed: the arrival time moves one interval on
  for j = 1, #RL do
    local lv = RL[j]
    if not lv[7] then
      local tat = struct.pack('>d', lv[6] + lv[2])
      if lv[8] then
        set[#set + 1] = lv[1]
        set[#set + 1] = tat
      else
        redis.call('SET', lv[1], tat, 'PXAT', math.ceil((lv[6] + lv[2]) / 1000))
      end
    end
  end
end
if q_mt and ttl > q_mt then  -- quarantine: the longest TTL granted (see above)
  set[#set + 1] = 'mt'
  set[#set + 1] = ttl
end
redis.call('HSET', USE, unpack(set))
-- fh is the end of the FENCE_BLOCK-aligned block holding the last fence: written when a block
-- starts (write_config.lua writes the first), so a grant reads nothing for it.
if fence % FENCE_BLOCK == 1 and cfgv ~= '' then
  redis.call('HSET', CFG, 'fh', fence - 1 + FENCE_BLOCK)
end
if shadow then redis.call('HINCRBY', USE, 's:' .. cname .. '|' .. scope_of(shadow), 1) end
if count_pending then count_pending() end
return {fence, expires, ttl, gcsv, onu, shadow and scope_of(shadow) or '', cfgv}
