"""The admission rule against a real redis-server: every level, every refusal scope, S1 and
S2, shadow mode, lowering limits under load, retry_after, fences and config versions."""

from __future__ import annotations

import time

import pytest

import guard
from guard import Throttled


def refusal(g: guard.Guard, fn: str) -> Throttled:
    with pytest.raises(Throttled) as ei:
        g.acquire(fn)
    return ei.value


def test_function_max(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=2)
    a, b = g.acquire("ingest"), g.acquire("ingest")
    t = refusal(g, "ingest")
    assert (t.function, t.scope) == ("ingest", "function")
    assert t.retry_after > 0
    a.release()
    g.acquire("ingest")  # room again
    assert b.held


def test_group_max_names_the_group(g: guard.Guard) -> None:
    g.admin.put_group("etl", max_concurrency=2, members=["ingest", "transform"])
    g.acquire("ingest")
    g.acquire("transform")
    assert refusal(g, "ingest").scope == "group:etl"
    assert refusal(g, "transform").scope == "group:etl"
    g.acquire("other")  # not a member: unaffected


def test_every_group_of_a_function_is_checked(g: guard.Guard) -> None:
    g.admin.put_group("wide", max_concurrency=10, members=["a", "b"])
    g.admin.put_group("narrow", max_concurrency=1, members=["b"])
    lease = g.acquire("b")
    assert set(lease.groups) == {"wide", "narrow"}
    assert refusal(g, "b").scope == "group:narrow"
    g.acquire("a")


def test_account_max(g: guard.Guard) -> None:
    g.admin.set_namespace(max_concurrency=2)
    g.acquire("x")
    g.acquire("y")
    assert refusal(g, "z").scope == "account"


def test_unconfigured_function_without_account_limit_is_unlimited(g: guard.Guard) -> None:
    leases = [g.acquire("free") for _ in range(50)]
    assert all(x.held for x in leases)
    assert g.admin.usage()["functions"]["free"]["in_use"] == 50


def test_function_level_is_checked_first(g: guard.Guard) -> None:
    g.admin.set_namespace(max_concurrency=1)
    g.admin.put_group("etl", max_concurrency=1, members=["ingest"])
    g.admin.put_function("ingest", max_concurrency=1)
    g.acquire("ingest")
    assert refusal(g, "ingest").scope == "function"


def test_s2_reserved_headroom_is_held_back_from_others(g: guard.Guard) -> None:
    g.admin.set_namespace(max_concurrency=10)
    g.admin.put_group("api", reserved=4, members=["login", "checkout"])
    others = [g.acquire("etl-job") for _ in range(6)]
    # 6 in use + 4 unused reserve = 10: a non-member is refused by the account...
    assert refusal(g, "etl-job").scope == "account"
    # ...while members take the reserve (S2: never refused while in_use(api) < reserved).
    api = [g.acquire("login") for _ in range(2)] + [g.acquire("checkout") for _ in range(2)]
    assert refusal(g, "login").scope == "account"  # account full now: 10 in use
    # The group may burst above its reserve when others leave room.
    others[0].release()
    others[1].release()
    api.append(g.acquire("login"))  # 9 in use: api at 5, above its reserve of 4
    others.append(g.acquire("etl-job"))  # reserve fully used, nothing held back: 9 < 10
    assert refusal(g, "etl-job").scope == "account"
    assert refusal(g, "login").scope == "account"
    assert g.admin.usage()["groups"]["api"] == {"in_use": 5, "max_concurrency": None, "reserved": 4}


def test_s2_member_never_refused_by_account_below_reserve(g: guard.Guard) -> None:
    g.admin.set_namespace(max_concurrency=5)
    g.admin.put_group("api", reserved=2, members=["login"])
    g.admin.put_group("bg", reserved=1, members=["ingest"])
    for _ in range(2):
        g.acquire("other")  # 2 + unused 2 (api) + 1 (bg) = 5
    assert refusal(g, "other").scope == "account"
    g.acquire("login")
    g.acquire("login")  # in_use(api) 2 = reserved: still admitted (bg's 1 is held back)
    assert refusal(g, "login").scope == "account"
    g.acquire("ingest")  # bg's reserve is bg's


def test_lowering_a_limit_keeps_held_leases_and_refuses_until_drained(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=5)
    held = [g.acquire("ingest") for _ in range(5)]
    g.admin.patch_function("ingest", max_concurrency=2)
    assert all(x.renew() for x in held)  # nothing revoked
    assert g.admin.usage()["functions"]["ingest"]["in_use"] == 5
    for _ in range(3):
        held.pop().release()
        if len(held) > 2 - 1:
            assert refusal(g, "ingest").scope == "function"
    assert len(held) == 2
    held.pop().release()
    g.acquire("ingest")


def test_lowering_the_account_max_under_load(g: guard.Guard) -> None:
    g.admin.set_namespace(max_concurrency=4)
    held = [g.acquire(f"f{i}") for i in range(4)]
    g.admin.set_namespace(max_concurrency=1)
    assert refusal(g, "new").scope == "account"
    for x in held[:3]:
        x.release()
    assert refusal(g, "new").scope == "account"  # 1 in use, max 1
    held[3].release()
    g.acquire("new")


def test_function_shadow_mode_grants_and_counts(g: guard.Guard, rclient, ns: str) -> None:
    g.admin.put_function("ingest", max_concurrency=1, mode="shadow")
    a, b = g.acquire("ingest"), g.acquire("ingest")
    assert a.held and b.held
    assert a.shadow_scope is None and b.shadow_scope == "function"
    use = rclient.hgetall(f"guard:{{{ns}}}:use")
    assert use[b"s:ingest|function"] == b"1"
    assert b"t:ingest|function" not in use


def test_group_shadow_mode(g: guard.Guard, rclient, ns: str) -> None:
    g.admin.put_group("etl", max_concurrency=1, members=["ingest"], mode="shadow")
    g.admin.put_function("ingest", max_concurrency=3)
    leases = [g.acquire("ingest") for _ in range(3)]
    assert [x.shadow_scope for x in leases] == [None, "group:etl", "group:etl"]
    assert refusal(g, "ingest").scope == "function"  # the function level still enforces
    assert rclient.hget(f"guard:{{{ns}}}:use", "s:ingest|group:etl") == b"2"


def test_throttles_are_counted_per_scope(g: guard.Guard, rclient, ns: str) -> None:
    g.admin.put_function("ingest", max_concurrency=0)
    for _ in range(3):
        t = refusal(g, "ingest")
    assert t.retry_after == pytest.approx(5.0)  # max 0: waits for an operator
    assert rclient.hget(f"guard:{{{ns}}}:use", "t:ingest|function") == b"3"


def test_retry_after_follows_observed_hold_times(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=1)
    lease = g.acquire("ingest", ttl=30)
    t = refusal(g, "ingest")
    assert 25 <= t.retry_after <= 30  # no history yet: until the earliest expiry
    time.sleep(0.5)
    lease.release()  # history: holds here last half a second
    g.acquire("ingest", ttl=30)
    t = refusal(g, "ingest")  # a fresh holder: plausibly gone after about the usual hold
    assert 0.2 <= t.retry_after <= 0.6
    time.sleep(0.6)
    t = refusal(g, "ingest")  # it outlived the usual hold: only its expiry is sure
    assert 25 <= t.retry_after <= 30


def test_fence_increases_per_grant(g: guard.Guard) -> None:
    fences = [g.acquire(f"f{i % 3}").fence for i in range(10)]
    assert fences == sorted(fences) and len(set(fences)) == 10


def test_usage_lists_unconfigured_functions_holding_leases(g: guard.Guard) -> None:
    g.admin.set_namespace(max_concurrency=100)
    g.admin.put_function("configured", max_concurrency=3)
    g.acquire("adhoc")
    u = g.admin.usage()
    assert u["account"] == {"in_use": 1, "max_concurrency": 100}
    assert u["functions"] == {
        "adhoc": {"in_use": 1, "max_concurrency": None},
        "configured": {"in_use": 0, "max_concurrency": 3},
    }
