"""The wire contract (`guard.wire`) without Redis: packed formats byte for byte, each
script's arguments and reply decoding, and one JSON form per lease type that the HTTP
server's response schemas accept. The same formats in the Lua scripts are checked by
reading their source; their behaviour is the integration suites' (real redis-server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard import UsageError, wire
from guard.model import Config, Function, Group
from guard.wire import Grant, LeaseInfo, Refusal, Renewal

LUA = Path(wire.__file__).parent / "lua"
ID = bytes(range(16))


def test_namespace_plan_bytes() -> None:
    raw = wire.pack_ns_plan(10, [("api", 3)])
    assert raw == b"\x00\x00\x00\x0a\x01" + b"\x00\x00\x00\x03\x03api"
    assert wire.unpack_ns_plan(raw) == (10, [("api", 3)])
    assert wire.unpack_ns_plan(wire.pack_ns_plan(None, [])) == (wire.UNLIMITED, [])


def test_function_plan_bytes() -> None:
    raw = wire.pack_function_plan(4, 30_000, True, "closed", [("etl", None, False)])
    assert raw[: wire.PLAN_FUNCTION.size] == b"\x00\x00\x00\x04\x00\x00\x75\x30\x01\x02\x01"
    assert raw[wire.PLAN_FUNCTION.size :] == b"\xff\xff\xff\xff\x00\x03etl"
    assert wire.unpack_function_plan(raw) == {
        "max": 4,
        "ttl_ms": 30_000,
        "shadow": True,
        "on_unavailable": "closed",
        "groups": [("etl", -1, False)],
    }
    assert wire.plan_ttl_ms(raw) == 30_000


def test_config_compiles_to_the_wire_plans() -> None:
    cfg = Config(
        20,
        {
            "etl": Group(max_concurrency=5, members=("ingest",), mode="shadow"),
            "api": Group(reserved=3, members=("login",)),
        },
        {"ingest": Function(max_concurrency=2, lease_ttl_seconds=60, on_unavailable="open")},
    )
    plans = cfg.plans()
    assert set(plans) == {wire.NS_PLAN, wire.FUNCTION_PLAN + "ingest", wire.FUNCTION_PLAN + "login"}
    assert wire.unpack_ns_plan(plans[wire.NS_PLAN]) == (20, [("api", 3)])
    ingest = wire.unpack_function_plan(plans[wire.FUNCTION_PLAN + "ingest"])
    assert ingest == {
        "max": 2,
        "ttl_ms": 60_000,
        "shadow": False,
        "on_unavailable": "open",
        "groups": [("etl", 5, True)],
    }
    login = wire.unpack_function_plan(plans[wire.FUNCTION_PLAN + "login"])
    assert login["max"] == -1 and login["groups"] == [("api", -1, False)]
    fields = cfg.to_fields()
    assert all(isinstance(v, bytes) for k, v in fields.items() if k.startswith(wire.PLAN_PREFIX))
    assert (
        Config.from_fields({k: v for k, v in fields.items() if not k.startswith(wire.PLAN_PREFIX)})
        == cfg
    )


@pytest.mark.parametrize(
    ("script", "formats"),
    [
        ("acquire_lease", [">iiBBB", ">iBBc0", ">iB", ">iBc0"]),
        ("renew_lease", [">ii"]),
        ("common", [wire.META_LUA]),
    ],
)
def test_lua_scripts_use_the_wire_formats(script: str, formats: list[str]) -> None:
    """The scripts unpack what `guard.wire` packs: the same struct letters."""
    src = (LUA / f"{script}.lua").read_text()
    for fmt in formats:
        assert f"'{fmt}'" in src, (script, fmt)
    assert wire.PLAN_FUNCTION.format == ">iiBBB" and wire.PLAN_NS.format == ">iB"
    assert wire.META_LUA.startswith(wire.META.format)


def test_lua_header_cites_the_wire_module() -> None:
    assert "Names and formats: guard/wire.py" in (LUA / "common.lua").read_text()


def test_lease_meta_roundtrip_and_the_other_mark() -> None:
    meta = wire.pack_meta(5_000, 1_000, 7, 4_000, "job", ["etl", "api"])
    info = LeaseInfo.unpack(ID, meta)
    assert info == LeaseInfo(ID.hex(), "job", ("etl", "api"), 5_000, 1_000, 7, 4_000)
    other = LeaseInfo.unpack(ID, wire.pack_meta(5_000, 1_000, 8, 4_000, "~late", []))
    assert other.function == "late" and other.groups == ()


def test_acquire_arguments() -> None:
    assert wire.acquire_args("f", ID, 0) == ("f", ID, 0)
    assert wire.acquire_args("f", ID, 500, 2000) == ("f", ID, 500, 2000, "", "", "", "")
    full = wire.acquire_args("f", ID, 0, 0, {"a": 2, "b": 1}, True, True, True)
    assert full == ("f", ID, 0, 0, "a=2,b=1", "1", "1", "1")


def test_acquire_replies() -> None:
    grant, version = wire.decode_acquire([3, 9000, 4000, b"etl,api", b"closed", b"", b"7"], ID, "f")
    assert version == "7"
    assert grant == Grant(ID.hex(), "f", 3, 9000, 4000, ("etl", "api"), "closed", "")
    refusal, version = wire.decode_acquire([0, b"group:etl", 250, b"", b""], ID, "f")
    assert version == "" and refusal == Refusal("group:etl", 250, "")
    assert wire.decode_acquire([-1], ID, "f") == (None, "")


def test_renew_release_usage_and_config_write() -> None:
    assert wire.renew_args(ID, 0) == (ID, 0)
    assert wire.decode_renew([1, 9000, 4000], ID) == Renewal(ID.hex(), 9000, 4000)
    assert wire.decode_renew([0], ID) is None
    assert wire.release_args(ID) == (ID,)
    assert wire.decode_release(1) is True and wire.decode_release(0) is False
    assert wire.decode_usage([b"a", b"2", b"", b"~" * 65, b"f:x", b"1"]) == {"a": "2", "f:x": "1"}
    args = wire.write_config_args("4", "chan", {"N": "{}", "p:ns": b"\x00"}, ["F:old"])
    assert args == ["4", "chan", "0", "0", "2", "N", "{}", "p:ns", b"\x00", "F:old"]
    audit = ["actor", "me", "action", "put_group"]
    args = wire.write_config_args("4", "chan", {"N": "{}"}, [], audit, 1000)
    assert args == ["4", "chan", "1000", "2", *audit, "1", "N", "{}"]
    assert wire.decode_write_config(5) == 5 and wire.decode_write_config(-1) is None


def test_counter_fields_split() -> None:
    assert wire.split_counter("n:job") == (wire.GRANTS, "job", "")
    assert wire.split_counter("t:job|group:etl") == (wire.THROTTLES, "job", "group:etl")
    assert wire.split_counter("s:job|account") == (wire.SHADOW_THROTTLES, "job", "account")
    assert wire.split_counter("t:no-scope") is None
    assert wire.split_counter("f:job") is None and wire.split_counter("fence") is None
    assert wire.counter({"a": "-2"}, "a") == 0 and wire.counter({}, "f:x") == 0


def test_lease_documents_roundtrip_through_the_server_schemas() -> None:
    """One JSON form per type: what the server writes (`to_doc`, validated by its response
    models) is what the HTTP client reads back (`from_doc`)."""
    from guard.server import schemas

    g = Grant(ID.hex(), "f", 3, 9_000, 4_000, ("etl",), "open", "group:etl")
    assert schemas.LeaseOut.model_validate(g.to_doc()).model_dump() == g.to_doc()
    assert Grant.from_doc(g.to_doc()) == g
    r = Renewal(ID.hex(), 12_345, 4_000)
    assert schemas.RenewalOut.model_validate(r.to_doc()).model_dump() == r.to_doc()
    assert Renewal.from_doc(r.to_doc()) == r
    for key in (None, "tenant-a"):  # the key shows only when set (the route: exclude_unset)
        info = LeaseInfo(ID.hex(), "f", ("etl",), 9_000, 5_000, 3, 4_000, key)
        held = schemas.HeldLease.model_validate(info.to_doc())
        assert held.model_dump(exclude_unset=True) == info.to_doc()
        assert LeaseInfo.from_doc(info.to_doc()) == info
    refusal = Refusal("account", 1_500, "closed")
    assert Refusal.from_doc(refusal.to_doc()) == refusal


def test_lease_id_rule() -> None:
    assert wire.parse_lease_id(ID) == ID
    assert wire.parse_lease_id(ID.hex()) == ID
    dashed = f"{ID.hex()[:8]}-{ID.hex()[8:12]}-{ID.hex()[12:16]}-{ID.hex()[16:20]}-{ID.hex()[20:]}"
    assert wire.parse_lease_id(dashed) == ID
    for bad in (b"short", "zz" * 16, ID.hex()[:-2], 16):
        with pytest.raises(UsageError) as ei:
            wire.parse_lease_id(bad)  # type: ignore[arg-type]
        assert ei.value.field == "lease_id"


def test_override_tail_of_the_namespace_plan() -> None:
    """The overrides ride after the reserving groups of p:ns, as text the acquire script
    finds with one plain search (NUL kind name NUL max:until;)."""
    tail = wire.pack_overrides([("function", "ingest", 0, 3500), ("group", "etl", 7, 61000)])
    assert tail == b"\0fingest\x000:3500;\0getl\x007:61000;"
    plan = wire.pack_ns_plan(100, [("api", 5)]) + tail
    assert wire.unpack_ns_plan(plan) == (100, [("api", 5)])
    assert wire.ns_plan_tail(plan) == tail
    assert wire.ns_plan_tail(wire.pack_ns_plan(None, [])) == b""
    assert wire.OVERRIDE_DOC + wire.OVERRIDE_KIND["group"] == "O:g"
