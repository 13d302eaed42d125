-- struct_compat.lua — prepended to every lease script. Real Redis ships the `struct` library;
-- fakeredis (guard serve's in-process fallback store when no redis-server binary exists)
-- does not. On Redis the `or` short-circuits, so none of this runs there. Covers only what
-- guard's scripts use: big-endian 'd' (double), 'i' (int32), 'B' (byte), 'c0' (a string
-- whose length is the number read or packed just before it).
local struct = struct or (function()
  local function int_bytes(n, width)
    if n < 0 then n = n + 2 ^ (8 * width) end
    local out = {}
    for i = width, 1, -1 do
      out[i] = string.char(n % 256)
      n = math.floor(n / 256)
    end
    return table.concat(out)
  end
  local function double_bytes(x)
    local sign = 0
    if x < 0 or (x == 0 and 1 / x < 0) then sign, x = 1, -x end
    local m, e = math.frexp(x)
    if x == 0 then m, e = 0, -1022 else m, e = m * 2 - 1, e - 1 + 1023 end
    if e <= 0 then m, e = math.ldexp(m + 1, e - 1), 0 end  -- subnormal
    local hi = sign * 2 ^ 31 + e * 2 ^ 20 + math.floor(m * 2 ^ 20)
    local lo = (m * 2 ^ 20 - math.floor(m * 2 ^ 20)) * 2 ^ 32
    return int_bytes(hi, 4) .. int_bytes(lo, 4)
  end
  local function read_uint(s, pos, width)
    local n = 0
    for i = pos, pos + width - 1 do n = n * 256 + string.byte(s, i) end
    return n
  end
  local function read_double(s, pos)
    local hi, lo = read_uint(s, pos, 4), read_uint(s, pos + 4, 4)
    local sign = hi >= 2 ^ 31 and -1 or 1
    local e = math.floor(hi / 2 ^ 20) % 2048
    local m = (hi % 2 ^ 20) * 2 ^ 32 + lo
    if e == 0 then return sign * math.ldexp(m, -1074) end
    return sign * math.ldexp(m + 2 ^ 52, e - 1075)
  end
  local S = {}
  function S.pack(fmt, ...)
    local args, out, i = {...}, {}, 1
    for op in string.gmatch(fmt, '[dicB]0?') do
      local v = args[i]
      if op == 'd' then out[#out + 1] = double_bytes(v)
      elseif op == 'i' then out[#out + 1] = int_bytes(v, 4)
      elseif op == 'B' then out[#out + 1] = string.char(v)
      else out[#out + 1] = v end
      i = i + 1
    end
    return table.concat(out)
  end
  function S.unpack(fmt, s, pos)
    local out, last = {}, nil
    pos = pos or 1
    for op in string.gmatch(fmt, '[dicB]0?') do
      if op == 'd' then out[#out + 1], pos = read_double(s, pos), pos + 8
      elseif op == 'i' then
        local n = read_uint(s, pos, 4)
        if n >= 2 ^ 31 then n = n - 2 ^ 32 end
        out[#out + 1], pos = n, pos + 4
      elseif op == 'B' then out[#out + 1], pos = string.byte(s, pos), pos + 1
      else
        last = table.remove(out)  -- 'c0': the length read just before is consumed
        out[#out + 1], pos = string.sub(s, pos, pos + last - 1), pos + last
      end
    end
    out[#out + 1] = pos
    return unpack(out)
  end
  return S
end)()
