-- read_usage.lua — reap expired leases, then return the namespace's counters: the fields
-- asked for and those of the unconfigured functions kept by name (at most MAX_NAMED) and of
-- OTHER. Never reads the whole use hash (its size follows what clients send).
-- KEYS[1..4] cfg, use, exp, lease (see common.lua; guard:{ns}:idle is derived)
-- ARGV    counter fields wanted (the caller builds them from the config: guard/model.py
--         `Config.counter_fields`)
-- returns a flat field/value list of the fields that exist, after reaping
local bound = tonumber(redis.call('HGET', USE, 'reap'))
if bound and bound <= now then reap(now) end
local want = {'a'}
for i = 1, #ARGV do want[#want + 1] = ARGV[i] end
local names = redis.call('ZRANGE', string.sub(USE, 1, -4) .. 'idle', 0, MAX_NAMED - 1)
names[#names + 1] = OTHER
for _, n in ipairs(names) do  -- the counters an unconfigured function can have (common.lua)
  for _, f in ipairs({'f:' .. n, 'n:' .. n, 'x:' .. n, 'u:' .. n, 'h:' .. n, 'o:' .. n,
                      't:' .. n .. '|account', 't:' .. n .. '|quarantine',
                      't:' .. n .. '|function', 'b:' .. n .. '|0.01', 'b:' .. n .. '|0.05',
                      'b:' .. n .. '|0.25', 'b:' .. n .. '|1', 'b:' .. n .. '|5',
                      'b:' .. n .. '|30', 'b:' .. n .. '|+Inf', 'b:' .. n .. '|sum'}) do
    want[#want + 1] = f
  end
end
local out = {}
-- In chunks: unpack() of thousands of arguments would overflow Lua's C stack.
for i = 1, #want, 1000 do
  local last = math.min(i + 999, #want)
  local vs = redis.call('HMGET', USE, unpack(want, i, last))
  for j = i, last do
    local v = vs[j - i + 1]
    if v then
      out[#out + 1] = want[j]
      out[#out + 1] = v
    end
  end
end
return out
