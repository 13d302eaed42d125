-- write_config.lua — apply one admin write atomically (compare-and-set on the version) and
-- append its audit entry in the same step.
-- The caller read the whole config at version ARGV[1], validated the change and compiled
-- the admission plans; if anyone wrote in between, nothing is written and -1 is returned.
-- KEYS[1] guard:{ns}:cfg
-- KEYS[2] guard:{ns}:audit  stream of audit entries, trimmed to ARGV[3] entries
-- ARGV[1] expected version ("0" for a namespace never written)
-- ARGV[2] release channel (a limit change may free room: waiters are woken)
-- ARGV[3] audit cap: the stream's length after the append (0: append nothing)
-- ARGV[4] number A of audit field/value pairs; ARGV[5 .. 4+2A] the pairs (wire.AUDIT_FIELDS)
--         (the arguments: guard/wire.py write_config_args)
-- ARGV[5+2A] number N of fields to set; then N field, value pairs; the rest: fields to delete
-- (FENCE_BLOCK and PROTOCOL are put on the line before by the loader, guard/scripts.py)
-- returns the new version, or -1 when the version did not match, or the error
--   "PROTOCOL ..." when the stored formats are of a newer protocol than PROTOCOL (nothing is
--   written: an older admin must not overwrite them)
-- Every write stamps `pv` = PROTOCOL (docs/protocol.md "Versioning"); the caller rewrites
-- every plan when the stamp it read was another (guard/admin.py).
-- A config written where none was also gets the fence floor `fh` (common.lua): the end of
-- the fence block holding the namespace's last fence (guard:{ns}:use, derived from KEYS[1] by
-- the naming rule of guard/keys.py; same hash tag), so fences never go back from then on.
local cur = redis.call('HMGET', KEYS[1], 'v', 'pv')
if (cur[1] or '0') ~= ARGV[1] then return -1 end
if cur[2] and tonumber(cur[2]) > tonumber(PROTOCOL) then
  return redis.error_reply('PROTOCOL namespace holds protocol ' .. cur[2] ..
    ' formats; this admin writes protocol ' .. PROTOCOL .. ': upgrade it')
end
local a = tonumber(ARGV[4])
local at = 5 + 2 * a
local n = tonumber(ARGV[at])
local last_set = at + 2 * n
-- In chunks: unpack() of thousands of arguments would overflow Lua's C stack.
for i = at + 1, last_set, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, last_set)))
end
for i = last_set + 1, #ARGV, 1000 do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if redis.call('HEXISTS', KEYS[1], 'fh') == 0 then
  local fence = tonumber(redis.call('HGET', string.sub(KEYS[1], 1, -4) .. 'use', 'fence')) or 0
  redis.call('HSET', KEYS[1], 'fh', (math.floor(fence / FENCE_BLOCK) + 1) * FENCE_BLOCK)
end
if cur[2] ~= PROTOCOL then redis.call('HSET', KEYS[1], 'pv', PROTOCOL) end
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
local cap = tonumber(ARGV[3])
if cap > 0 and a > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', cap, '*', unpack(ARGV, 5, at - 1))
end
redis.call('PUBLISH', ARGV[2], '*')
return nv
