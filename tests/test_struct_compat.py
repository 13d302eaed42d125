"""guard/lua/struct_compat.lua against the real `struct` library of redis-server.

fakeredis is used here on purpose: the shim exists only for fakeredis (the in-process store
`guard serve` falls back to when no redis-server binary exists), whose Lua has no `struct`.
Each case is packed by real Redis and by the shim on fakeredis; bytes and unpacked values
must be identical."""

from __future__ import annotations

import json

import fakeredis
import pytest
import redis

from guard.scripts import read as _source

COMPAT = _source("struct_compat")
PACK = "return struct.pack(ARGV[1], unpack(cjson.decode(ARGV[2])))"
UNPACK = (
    "local t = {struct.unpack(ARGV[1], ARGV[2])} "
    "for i, v in ipairs(t) do t[i] = tostring(v) end return t"
)
CASES = [
    (">ddiiBc0", [1795741368143.0, 1795741338143.0, 12345, 30000, 6, "ingest"]),
    (">iiBBB", [-1, 900000, 1, 2, 3]),
    (">iBBc0", [500, 0, 3, "etl"]),
    (">iB", [1000, 2]),
    (">d", [0.5]),
    (">d", [-3.25e-300]),
    (">d", [0.0]),
    (">i", [-2147483648]),
    (">i", [2147483647]),
]


@pytest.mark.parametrize(("fmt", "args"), CASES)
def test_shim_matches_redis_struct(rclient: redis.Redis, fmt: str, args: list) -> None:
    fake = fakeredis.FakeRedis()
    assert fake.eval("return type(struct)", 0) == b"nil"  # why the shim exists
    packed = rclient.eval(PACK, 0, fmt, json.dumps(args))
    assert fake.eval(COMPAT + PACK, 0, fmt, json.dumps(args)) == packed
    assert fake.eval(COMPAT + UNPACK, 0, fmt, packed) == rclient.eval(UNPACK, 0, fmt, packed)
