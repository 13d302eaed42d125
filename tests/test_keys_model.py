"""Issue 14's settings: per-key limits and rates, validated with the field named and the rule
stated; the plans they compile to; the SDK's key argument (docs/guarantees.md "Bounds")."""

from __future__ import annotations

from typing import Any

import pytest

from guard import Guard, UsageError, keys, wire
from guard.model import (
    MAX_BURST,
    MAX_KEY_OVERRIDES,
    MAX_LIMIT,
    MAX_RATE,
    MIN_RATE,
    Config,
    Function,
    Group,
    admits,
    default_burst,
    rate_plan,
)


def field_of(build: Any, **fields: Any) -> str | None:
    with pytest.raises(UsageError) as e:
        build(**fields)
    return e.value.field


@pytest.mark.parametrize("build", [Function.build, Group.build])
def test_key_and_rate_fields_are_validated_naming_the_field(build: Any) -> None:
    assert field_of(build, key_max_concurrency=-1) == "key_max_concurrency"
    assert field_of(build, key_max_concurrency=MAX_LIMIT + 1) == "key_max_concurrency"
    assert field_of(build, key_overrides=[1]) == "key_overrides"
    assert field_of(build, key_overrides={"bad key": 1}) == "key_overrides"
    assert field_of(build, key_overrides={"k" * 129: 1}) == "key_overrides"
    assert field_of(build, key_overrides={"a": -1}) == "key_overrides"
    many = {f"k{i}": 1 for i in range(MAX_KEY_OVERRIDES + 1)}
    assert field_of(build, key_overrides=many) == "key_overrides"
    assert field_of(build, rate_per_second=0) == "rate_per_second"
    assert field_of(build, rate_per_second=MIN_RATE / 2) == "rate_per_second"
    assert field_of(build, rate_per_second=MAX_RATE * 2) == "rate_per_second"
    assert field_of(build, rate_per_second=float("inf")) == "rate_per_second"
    assert field_of(build, rate_per_second=True) == "rate_per_second"
    assert field_of(build, rate_per_second=1, rate_burst=0) == "rate_burst"
    assert field_of(build, rate_per_second=1, rate_burst=MAX_BURST + 1) == "rate_burst"
    assert field_of(build, rate_per_second=1, rate_burst=1.5) == "rate_burst"
    assert field_of(build, rate_burst=5) == "rate_burst"  # a burst needs a rate
    ok = build(key_max_concurrency=3, key_overrides={"big": 10}, rate_per_second=2.5, rate_burst=4)
    assert ok.key_cap("big") == 10 and ok.key_cap("other") == 3 and ok.keyed
    assert len(build(key_overrides={f"k{i}": 1 for i in range(MAX_KEY_OVERRIDES)}).key_overrides)


def test_key_rate_fields_are_function_only_and_validated() -> None:
    assert field_of(Function.build, key_rate_per_second=-1) == "key_rate_per_second"
    assert field_of(Function.build, key_rate_burst=2) == "key_rate_burst"
    assert field_of(Group.build, key_rate_per_second=1) == "key_rate_per_second"  # unknown
    f = Function.build(key_rate_per_second=0.5, key_rate_burst=3)
    assert f.key_rate_per_second == 0.5 and f.key_rate_burst == 3


def test_rule_messages_state_the_rule() -> None:
    with pytest.raises(UsageError, match=r"rate_per_second must be between 0\.001 and 1000000"):
        Function.build(rate_per_second=0)
    with pytest.raises(UsageError, match="rate_burst needs rate_per_second"):
        Group.build(rate_burst=2)
    with pytest.raises(UsageError, match="key_overrides must be 1-128 characters"):
        Function.build(key_overrides={"-x": 1})


def test_account_rate_is_checked_and_kept_beside_max_concurrency() -> None:
    with pytest.raises(UsageError) as e:
        Config(rate_per_second=-1).check()
    assert e.value.field == "rate_per_second"
    with pytest.raises(UsageError) as e:
        Config(rate_burst=3).check()
    assert e.value.field == "rate_burst"
    c = Config(max_concurrency=5, rate_per_second=10, rate_burst=20)
    c.check()
    assert c.ns_doc() == {"max_concurrency": 5, "rate_per_second": 10, "rate_burst": 20}
    assert Config.from_fields(c.to_fields()) == c


def test_default_burst_is_one_second_of_rate() -> None:
    assert default_burst(0.2) == 1 and default_burst(10) == 10 and default_burst(2.5) == 3
    assert rate_plan(None, None) == (0.0, 0.0)
    assert rate_plan(10, None) == (100_000.0, 900_000.0)
    assert rate_plan(4, 1) == (250_000.0, 0.0)


def test_docs_round_trip_and_plans_carry_keys_and_rates() -> None:
    c = Config(
        rate_per_second=100,
        groups={
            "g": Group.build(members=["f"], key_max_concurrency=1, key_overrides={"vip": 3}),
            "h": Group.build(members=["f"], rate_per_second=2),
        },
        functions={
            "f": Function.build(key_max_concurrency=2, key_rate_per_second=5),
            "plain": Function.build(max_concurrency=3),
        },
    )
    c.check()
    assert Config.from_fields(c.to_fields()) == c
    plans = c.plans()
    assert plans[wire.GROUP_KEY_CAP_PLAN + "g|vip"] == wire.KEY_CAP.pack(3)
    fplan = wire.unpack_function_plan(plans[wire.FUNCTION_PLAN + "f"])
    assert fplan["keys"] == {
        "key_max": 2,
        "key_overrides": False,
        "rate": (0.0, 0.0),
        "key_rate": (200_000.0, 800_000.0),
        "groups": [(1, True, (0.0, 0.0)), (-1, False, (500_000.0, 500_000.0))],
    }
    # nothing keyed or rated: the plan is the protocol-1 format, byte for byte
    assert "keys" not in wire.unpack_function_plan(plans[wire.FUNCTION_PLAN + "plain"])
    assert plans[wire.FUNCTION_PLAN + "plain"] == wire.pack_function_plan(
        3, 900_000, False, None, []
    )
    assert wire.ns_plan_tail(plans[wire.NS_PLAN]) == b"\0r10000.0:990000.0;"
    assert wire.ns_plan_tail(Config(max_concurrency=1).plans()[wire.NS_PLAN]) == b""


def test_admits_checks_key_levels_in_order() -> None:
    c = Config(
        groups={"g": Group.build(members=["f"], key_max_concurrency=1)},
        functions={"f": Function.build(key_max_concurrency=2, key_overrides={"vip": 5})},
    )
    assert admits(c, "f", {wire.key_field("f", "a"): 2}, "a") == (False, wire.SCOPE_KEY)
    vip = {wire.key_field("f", "vip"): 2, wire.group_key_field("g", "vip"): 1}
    assert admits(c, "f", vip, "vip") == (False, "group-key:g")
    assert admits(c, "f", {wire.key_field("f", "a"): 2}, None) == (True, None)
    assert admits(c, "f", {wire.group_key_field("g", "b"): 1}, "b") == (False, "group-key:g")


def test_scopes_and_meta_helpers() -> None:
    assert wire.group_key_scope("g") == "group-key:g"
    assert wire.rate_group_scope("g") == "rate:group:g"
    assert wire.is_rate_scope(wire.SCOPE_RATE_KEY) and not wire.is_rate_scope("key")
    assert (wire.SCOPE_RATE_ACCOUNT, wire.SCOPE_RATE_FUNCTION) == ("rate:account", "rate:function")
    m = wire.pack_meta(5, 1, 7, 4, "f", ["g", "h"], "t1", True, ["h"])
    info = wire.LeaseInfo.unpack(b"\1" * 16, m)
    assert info.groups == ("g", "h") and info.key == "t1"
    assert wire.split_meta_groups(m[wire.META.size + 1 :]) == (("g", "h"), "t1", True, ("h",))
    assert wire.LeaseInfo.unpack(b"\1" * 16, wire.pack_meta(5, 1, 7, 4, "f", [])).key is None
    assert keys.rate_key("ns", "k:f|t") == "guard:{ns}:r:k:f|t"
    args = wire.acquire_args("f", b"x" * 16, 0, key="t1")
    assert len(args) == 9 and args[8] == "t1"
    assert len(wire.acquire_args("f", b"x" * 16, 0)) == 3


class _NoStore:
    pool_exhausted = 0

    def __init__(self) -> None:
        self.keys: list[str | None] = []

    def acquire_waiting(self, ns: str, fn: str, raw: bytes, ttl: int, wait: float,
                        pending: Any = None, *, key: str | None = None) -> Any:  # fmt: skip
        self.keys.append(key)
        return wire.Refusal("rate:key", 1234, "")


def test_sdk_key_argument_is_validated_and_passed_down() -> None:
    store = _NoStore()
    g = Guard(store)  # type: ignore[arg-type]
    for bad in ("", "a b", "k" * 129, 5):
        with pytest.raises(UsageError) as e:
            g.acquire("f", key=bad)  # type: ignore[arg-type]
        assert e.value.field == "key"
    from guard import Throttled

    with pytest.raises(Throttled) as t:
        g.acquire("f", key="tenant-a")
    assert t.value.scope == "rate:key" and t.value.retry_after == 1.234
    with pytest.raises(Throttled), g.slot("f", key="tenant-b"):
        pass

    @g.limit("f", key=lambda event, context: event["tenant"])
    def handler(event: Any, context: Any) -> str:
        return "ran"

    with pytest.raises(Throttled):
        handler({"tenant": "tenant-c"}, None)
    with pytest.raises(UsageError):
        g.limit("f", key="bad key")
    assert store.keys == ["tenant-a", "tenant-b", "tenant-c"]


def test_counter_fields_name_the_key_and_rate_scopes_configured() -> None:
    c = Config(
        rate_per_second=5,
        groups={"g": Group.build(members=["f"], key_max_concurrency=1, rate_per_second=1)},
        functions={
            "f": Function.build(key_overrides={"a": 1}, rate_per_second=2, key_rate_per_second=1)
        },
    )
    fields = set(c.counter_fields())
    for scope in (
        "key",
        "group-key:g",
        "rate:account",
        "rate:group:g",
        "rate:function",
        "rate:key",
    ):
        assert f"t:f|{scope}" in fields and f"s:f|{scope}" in fields, scope
    plain = set(Config(functions={"f": Function()}).counter_fields())
    assert not any("key" in x or "rate:" in x for x in plain)
