"""The script protocol's own promises (docs/protocol.md): script assembly, Lua errors that
name the file and line they happened at, and the protocol version check."""

from __future__ import annotations

import os
import re

import pytest
import redis

import guard
from guard import keys, scripts, wire
from guard.store import RedisStore

LUA = os.path.join(os.path.dirname(guard.__file__), "lua")


def line_of(file: str, text: str) -> int:
    with open(os.path.join(LUA, file), encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if text in line:
                return i
    raise AssertionError(f"{text!r} not in {file}")


def test_assembled_script_is_constants_line_then_compat_common_and_script() -> None:
    src = scripts.lease_script("release_lease")
    names = [n for n, _ in src.parts]
    assert names == ["(constants)", "struct_compat.lua", "common.lua", "release_lease.lua"]
    first = src.text.split("\n", 1)[0]
    assert first.startswith("local DEFAULT_TTL_MS, BACKSTOP_MS, IDLE_MS, ")
    assert first.endswith(f"'{keys.OTHER}', '{wire.PROTOCOL_VERSION}'")
    assert src.text.endswith(scripts.read("release_lease"))
    # every line of the assembled source maps back to its own file and line
    lines = src.text.split("\n")
    for n in (1, 2, 72, 73, 222, 223, len(lines) - 1):
        file, at = src.locate(n)
        if file != "(constants)":
            assert scripts.read(file.removesuffix(".lua")).split("\n")[at - 1] == lines[n - 1]


def test_lua_error_in_a_script_names_its_file_and_line(
    redis_server: object, ns: str, rclient: redis.Redis
) -> None:
    """A plan value written directly into the cfg hash, too short to unpack: the error names
    acquire_lease.lua and the line of the unpack, not the assembled script's line."""
    store = RedisStore.from_url(redis_server.url, timeout=2.0)  # type: ignore[attr-defined]
    try:
        store.admin(ns).put_function("f", max_concurrency=2)
        rclient.hset(keys.config_key(ns), "p:f:f", b"\x00\x01")
        with pytest.raises(guard.StoreError) as err:
            store.acquire(ns, "f", os.urandom(16), 1000)
        want = line_of("acquire_lease.lua", "struct.unpack('>iiBBB', plan[2])")
        assert f"acquire_lease.lua:{want}:" in str(err.value), str(err.value)
        assert "user_script" not in str(err.value)
    finally:
        store.close()


def test_lua_error_in_common_lua_names_common_lua(
    redis_server: object, ns: str, rclient: redis.Redis
) -> None:
    """A corrupt lease meta: release reads it with common.lua's meta_of."""
    store = RedisStore.from_url(redis_server.url, timeout=2.0)  # type: ignore[attr-defined]
    try:
        raw = os.urandom(16)
        rclient.hset(keys.lease_keys(ns)[3], raw, b"junk")
        with pytest.raises(guard.StoreError) as err:
            store.release(ns, raw)
        want = line_of("common.lua", "struct.unpack(META, m)")
        assert re.search(rf"\bcommon\.lua:{want}:", str(err.value)), str(err.value)
    finally:
        store.close()


# -- versioning ----------------------------------------------------------------------------


def test_config_writes_stamp_the_protocol_version(g: guard.Guard, rclient: redis.Redis) -> None:
    g.admin.put_function("f", max_concurrency=1)
    pv = rclient.hget(keys.config_key(g.namespace), wire.PROTOCOL_FIELD)
    assert pv == str(wire.PROTOCOL_VERSION).encode()
    g.admin.put_function("f", max_concurrency=2)  # a later write keeps it, not as stale
    assert rclient.hget(keys.config_key(g.namespace), wire.PROTOCOL_FIELD) == pv
    # a namespace configured before the stamp existed holds protocol 1: admitted, then stamped
    rclient.hdel(keys.config_key(g.namespace), wire.PROTOCOL_FIELD)
    g.acquire("f").release()
    g.admin.put_function("f", max_concurrency=3)
    assert rclient.hget(keys.config_key(g.namespace), wire.PROTOCOL_FIELD) == pv


def test_newer_protocol_in_store_is_refused_and_nothing_is_written(
    redis_server: object, ns: str, rclient: redis.Redis
) -> None:
    """A namespace written by a newer major: this client refuses every acquire with
    ProtocolMismatch (before any write), and its admin neither reads nor writes it."""
    g = guard.Guard.from_url(
        redis_server.url,  # type: ignore[attr-defined]
        namespace=ns,
        timeout=2.0,
        on_unavailable="closed",
    )
    try:
        g.admin.put_function("f", max_concurrency=1)
        newer = str(wire.PROTOCOL_VERSION + 1)
        rclient.hset(keys.config_key(ns), wire.PROTOCOL_FIELD, newer)
        before = {k: rclient.dump(k) for k in keys.lease_keys(ns)}
        with pytest.raises(guard.ProtocolMismatch, match=f"holds protocol {newer} formats"):
            g.acquire("f")
        with pytest.raises(guard.ProtocolMismatch):
            g.backend.acquire(ns, "f", os.urandom(16), 1000, 5, {"f": 3})
        assert {k: rclient.dump(k) for k in keys.lease_keys(ns)} == before
        with pytest.raises(guard.ProtocolMismatch):
            g.admin.put_function("f", max_concurrency=5)
        with pytest.raises(guard.ProtocolMismatch):
            g.admin.config()
        assert rclient.hget(keys.config_key(ns), wire.PROTOCOL_FIELD) == newer.encode()
        # The mismatch is what the script says, not only what this client reads first.
        store = g.backend
        with pytest.raises(guard.ProtocolMismatch):
            store.write_config(ns, rclient.hget(keys.config_key(ns), "v").decode(), {}, [])
    finally:
        g.close()


def test_open_policy_runs_unguarded_on_a_protocol_mismatch(
    redis_server: object, ns: str, rclient: redis.Redis
) -> None:
    g = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0)  # type: ignore[attr-defined]
    try:
        g.admin.put_function("f", max_concurrency=1)
        rclient.hset(keys.config_key(ns), wire.PROTOCOL_FIELD, "9")
        lease = g.acquire("f")
        assert lease.unguarded
    finally:
        g.close()


def test_older_protocol_stamp_is_upgraded_by_the_next_config_write(
    g: guard.Guard, rclient: redis.Redis
) -> None:
    """Stored formats of an older major: acquires refuse until an admin of this version
    writes the config again, which compiles every plan anew (not only the changed ones)."""
    g.admin.put_function("f", max_concurrency=1)
    cfg = keys.config_key(g.namespace)
    rclient.hset(cfg, mapping={wire.PROTOCOL_FIELD: "0", "p:f:f": b"old format"})
    with pytest.raises(guard.ProtocolMismatch):
        g.backend.acquire(g.namespace, "f", os.urandom(16), 1000)
    g.admin.set_namespace(max_concurrency=None)
    assert rclient.hget(cfg, wire.PROTOCOL_FIELD) == str(wire.PROTOCOL_VERSION).encode()
    lease = g.acquire("f")
    assert lease.fence >= 1
    with pytest.raises(guard.Throttled):
        g.acquire("f")


# -- docs/protocol.md is true to the code ---------------------------------------------------

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "protocol.md")


def test_protocol_md_states_the_assembly_and_formats_the_code_uses() -> None:
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    assert f"Protocol version: **{wire.PROTOCOL_VERSION}**" in text
    # the constants lines, verbatim (an SDK copies them)
    assert scripts.constants_line(scripts.CONSTANTS).strip() in text
    assert scripts.constants_line(scripts.WRITE_CONFIG_CONSTANTS).strip() in text
    for name, value in scripts.CONSTANTS.items():
        shown = f"`'{value}'`" if isinstance(value, str) else f"{value}"
        assert re.search(rf"\| `{name}` \| {re.escape(shown)} \|", text), name
    # every struct layout the scripts use is documented (or reads a documented one's head)
    lua = "".join(scripts.read(n) for n in (*scripts.LEASE_SCRIPTS, "common"))
    documented = re.findall(r"[`'](>[a-zA-Z0-9]+)[`']", text)
    for fmt in set(re.findall(r"'(>[a-zA-Z0-9]+)'", lua)):
        assert any(d.startswith(fmt) for d in documented), fmt
    # every counter prefix common.lua lists
    for field in ("a", "f:<fn>", "g:<group>", "n:<fn>", "x:<fn>", "u:<fn>", "h:<fn>", "fence"):
        assert f"| `{field}` |" in text, field
    # the `wire.` column names the constant that holds each field (prefix fields: its prefix)
    rows = re.findall(
        r"^\| `([^`]+)`(?:, `[^`]+`)* \|.*\| `([A-Z_]+)`(?:, `[A-Z_]+`)* \|$", text, re.M
    )
    assert len(rows) >= 20, rows
    for field, const in rows:
        assert field.replace("\\|", "|").startswith(getattr(wire, const)), (field, const)
    for link in re.findall(r"\]\(([^)#]+)", text):
        if not link.startswith("http"):
            assert os.path.exists(os.path.join(os.path.dirname(DOC), link)), link
