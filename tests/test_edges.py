"""Edge cases of admission and leases (issue 10) and the retry_after hint, against a real
redis-server: no input, timing or growth path breaks a limit, leaks a slot or grows state
without bound. Each test names the guarantee it shows (docs/guarantees.md "Bounds")."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

import guard
from guard import keys
from guard.model import MAX_GROUPS_PER_FUNCTION, Config, Group


def server_ms(rclient: redis.Redis) -> int:
    sec, usec = rclient.time()
    return int(sec) * 1000 + int(usec) // 1000


def wait_past(rclient: redis.Redis, at_ms: float) -> None:
    for _ in range(1000):
        if server_ms(rclient) > at_ms:
            return
        time.sleep(0.01)
    raise AssertionError("server time did not pass the mark")


def use(rclient: redis.Redis, ns: str) -> dict[bytes, bytes]:
    return rclient.hgetall(keys.lease_keys(ns)[1])


# -- 1. renew to a shorter TTL ---------------------------------------------------------------


def test_renew_to_a_shorter_ttl_frees_the_slot_at_the_new_expiry(g: guard.Guard, rclient) -> None:
    g.admin.put_function("job", max_concurrency=1)
    lease = g.acquire("job", ttl=900)
    assert lease.renew(ttl=0.05)
    wait_past(rclient, lease.expires_at * 1000)
    again = g.acquire("job")  # the slot came back at the renewed expiry, not after 900 s
    assert again.held
    assert g.admin.usage()["functions"]["job"]["in_use"] == 1


# -- 2. a grant is always live ---------------------------------------------------------------


def test_retried_acquire_never_returns_an_expired_lease(g: guard.Guard, rclient) -> None:
    """More leases expire at once than one reap pass removes; the retried id is among the
    ones left, so the script finds it expired under HSETNX."""
    lid = "ff" * 16
    leases = [g.acquire("bulk", ttl=0.5) for _ in range(1100)]
    last = g.acquire("bulk", ttl=0.5, lease_id=lid)
    wait_past(rclient, max(x.expires_at for x in [*leases, last]) * 1000)
    again = g.acquire("bulk", ttl=30, lease_id=lid)
    assert again.expires_at * 1000 > server_ms(rclient) - 5  # live when returned
    assert again.ttl == pytest.approx(30)
    assert again.fence > last.fence  # a new grant, not the old one
    u = g.admin.usage()
    assert u["account"]["in_use"] == 1 and u["functions"]["bulk"]["in_use"] == 1


def test_retried_acquire_of_an_expired_lease_at_the_limit(g: guard.Guard, rclient, ns) -> None:
    """The refusal path's retry check: an expired lease with the same id is not an answer."""
    g.admin.put_function("job", max_concurrency=1)
    lid = "ab" * 16
    first = g.acquire("job", ttl=0.05, lease_id=lid)
    rclient.hset(keys.lease_keys(ns)[1], "reap", 9e15)  # as if no reap were due
    wait_past(rclient, first.expires_at * 1000)
    retried = g.acquire("job", ttl=30, lease_id=lid)
    assert retried.expires_at * 1000 > server_ms(rclient) - 5
    assert g.admin.usage()["functions"]["job"]["in_use"] == 1


# -- 3. TTL resolution -------------------------------------------------------------------------


def test_sub_millisecond_ttls_are_refused(g: guard.Guard, http: Any, ns: str) -> None:
    with pytest.raises(guard.UsageError) as ei:
        g.admin.put_function("f", lease_ttl_seconds=0.0004)
    assert ei.value.field == "lease_ttl_seconds"
    g.admin.put_function("f", lease_ttl_seconds=600)
    with pytest.raises(guard.UsageError) as ei:
        g.acquire("f", ttl=0.0009)
    assert ei.value.field == "ttl"
    lease = g.acquire("f", ttl=0.0016)  # the millisecond resolution rounds, never to 0
    assert lease.ttl == pytest.approx(0.002)
    with pytest.raises(guard.UsageError):
        lease.renew(ttl=0.0001)
    r = http.post(f"/v1/namespaces/{ns}/leases", json={"function": "f", "ttl_seconds": 0.0009})
    assert r.status_code == 400 and r.json["field"] == "ttl_seconds"
    r = http.put(f"/v1/namespaces/{ns}/functions/f", json={"lease_ttl_seconds": 0.0004})
    assert r.status_code == 400 and r.json["field"] == "lease_ttl_seconds"


# -- 4. the fence --------------------------------------------------------------------------------


def test_fence_never_goes_back_while_the_config_exists(g: guard.Guard, rclient, ns) -> None:
    g.admin.set_namespace(max_concurrency=100)
    top = max(g.acquire("job").fence for _ in range(5))
    rclient.delete(keys.lease_keys(ns)[1])  # the counters' idle backstop expired
    assert g.acquire("job").fence > top
    rclient.delete(*keys.lease_keys(ns)[1:])  # every lease-side key, twice
    f2 = g.acquire("job").fence
    rclient.delete(*keys.lease_keys(ns)[1:])
    assert f2 > top and g.acquire("job").fence > f2
    g.admin.put_function("job", max_concurrency=10)  # admin writes keep the floor
    assert g.acquire("job").fence > f2


def test_fence_floor_covers_fences_issued_before_the_config(g: guard.Guard, rclient, ns) -> None:
    top = max(g.acquire("job").fence for _ in range(3))  # the SDK ran unconfigured first
    g.admin.set_namespace(max_concurrency=100)
    rclient.delete(keys.lease_keys(ns)[1])
    assert g.acquire("job").fence > top


# -- 5. fail-open counts ---------------------------------------------------------------------


def test_fail_open_counts_survive_a_refusal(g: guard.Guard, rclient, ns) -> None:
    g.admin.put_function("job", max_concurrency=0)
    g._pending["job"] = 3  # three runs went unguarded while the store was away
    with pytest.raises(guard.Throttled):
        g.acquire("job")
    assert use(rclient, ns)[b"u:job"] == b"3"
    assert g.unavailable_pending() == {}


def test_fail_open_counts_survive_a_retried_acquire(g: guard.Guard, rclient, ns) -> None:
    lid = "cd" * 16
    g.acquire("job", lease_id=lid)
    g._pending["job"] = 2
    g.acquire("job", lease_id=lid)  # the held lease comes back; the counts are recorded
    assert use(rclient, ns)[b"u:job"] == b"2"


# -- 6. groups per function ---------------------------------------------------------------------


def test_a_function_in_too_many_groups_is_a_conflict(g: guard.Guard, http: Any, ns) -> None:
    n = MAX_GROUPS_PER_FUNCTION
    cfg = Config(groups={f"g{i}": Group(members=("f",)) for i in range(n)})
    g.admin.replace_config(cfg)  # at the bound: fine
    assert len(g.acquire("f").groups) == n
    r = http.put(f"/v1/namespaces/{ns}/groups/one-more", json={"members": ["f"]})
    assert r.status_code == 409 and r.json["field"] == "members"
    with pytest.raises(guard.ConflictError):
        Config(groups={f"g{i}": Group(members=("f",)) for i in range(256)}).check()
    many = {f"r{i}": Group(reserved=1, members=(f"m{i}",)) for i in range(256)}
    with pytest.raises(guard.ConflictError) as ei:
        g.admin.replace_config(Config(groups=many))
    assert ei.value.field == "reserved"


# -- 7. names ------------------------------------------------------------------------------------


def test_names_with_a_trailing_newline_are_refused(g: guard.Guard, http: Any) -> None:
    for bad in ("abc\n", "f\n"):
        with pytest.raises(guard.UsageError):
            guard.model.check_name(bad)
        with pytest.raises(guard.UsageError):
            guard.model.check_namespace(bad)
    assert http.put("/v1/namespaces/abc%0A", json={"max_concurrency": 1}).status_code == 400
    r = http.put("/v1/namespaces/ok/functions/f%0A", json={})
    assert r.status_code == 400
    with pytest.raises(guard.UsageError):
        g.acquire("job\n")


# -- 8. the fail-open count map ------------------------------------------------------------


def test_fail_open_map_is_bounded(g: guard.Guard, http: Any, rclient, ns) -> None:
    g.admin.put_function("known", max_concurrency=5)
    big = {f"n{i}": 1 for i in range(keys.MAX_PENDING_NAMES + 1)}
    with pytest.raises(guard.UsageError) as ei:
        g.backend.acquire(ns, "known", b"\1" * 16, 0, pending=big)
    assert ei.value.field == "unavailable"
    r = http.post(f"/v1/namespaces/{ns}/leases", json={"function": "known", "unavailable": big})
    assert r.status_code == 400 and r.json["field"] == "unavailable"
    g.acquire("known").release()
    before = len(use(rclient, ns))
    g.backend.acquire(
        ns, "mine", b"\2" * 16, 0, pending={"known": 2, "mine": 1, "zz1": 4, "zz2": 5}
    )
    u = use(rclient, ns)
    assert u[b"u:known"] == b"2" and u[b"u:mine"] == b"1"  # known, and the caller's own
    assert b"u:zz1" not in u and b"u:zz2" not in u
    assert u[("u:" + keys.OTHER).encode()] == b"9"  # the rest: aggregated, not lost
    assert len(u) - before == 5  # n:mine f:mine u:known u:mine u:~other


def test_the_sdk_sends_a_bounded_map_and_carries_the_rest(g: guard.Guard, rclient, ns) -> None:
    many = {f"f{i}": 1 for i in range(keys.MAX_PENDING_NAMES + 10)}
    g._pending.update(many)
    g.acquire("job").release()
    assert len(g.unavailable_pending()) == 10
    g.acquire("job").release()
    assert g.unavailable_pending() == {}
    total = sum(int(v) for k, v in use(rclient, ns).items() if k.startswith(b"u:"))
    assert total == len(many)


# -- 9. unconfigured function names -----------------------------------------------------------


def test_idle_unconfigured_counters_are_cleaned(g: guard.Guard, rclient, ns) -> None:
    g.admin.put_function("configured", max_concurrency=5)
    g.acquire("adhoc").release()
    g.acquire("configured").release()
    assert b"n:adhoc" in use(rclient, ns)
    idle_key = keys.idle_key(ns)
    assert rclient.zscore(idle_key, "adhoc") is not None
    assert rclient.zscore(idle_key, "configured") is None  # configured: not tracked
    due = rclient.zscore(idle_key, "adhoc")
    assert due >= server_ms(rclient) + keys.IDLE_CLEANUP * 1000 - 1000  # 24 h from now
    # Time passes: the name's cleanup deadline (last acquire + the idle delay) is reached.
    rclient.zadd(idle_key, {"adhoc": server_ms(rclient) - 1})
    rclient.hset(keys.lease_keys(ns)[1], "reap", 1)
    g.admin.usage()  # any reap pass cleans
    left = [k for k in use(rclient, ns) if b"adhoc" in k]
    assert left == [] and rclient.zscore(idle_key, "adhoc") is None
    assert b"n:configured" in use(rclient, ns)


def test_an_idle_name_holding_a_lease_is_kept(g: guard.Guard, rclient, ns) -> None:
    lease = g.acquire("adhoc", ttl=600)
    idle_key = keys.idle_key(ns)
    rclient.zadd(idle_key, {"adhoc": server_ms(rclient) - 1})
    rclient.hset(keys.lease_keys(ns)[1], "reap", 1)
    assert g.admin.usage()["functions"]["adhoc"]["in_use"] == 1
    assert rclient.zscore(idle_key, "adhoc") > server_ms(rclient)  # looked at again later
    assert lease.release()
    assert g.admin.usage()["account"]["in_use"] == 0


def test_unconfigured_names_beyond_the_cap_are_aggregated(
    g: guard.Guard, http: Any, rclient, ns
) -> None:
    from test_http_metrics import samples

    g.admin.set_namespace(max_concurrency=10_000)
    n = keys.MAX_UNCONFIGURED_NAMES + 30
    held = [g.acquire(f"u{i}") for i in range(n)]
    for lease in held[:10]:
        lease.release()
    text = http.get("/metrics").data.decode()
    grants = {
        dict(lab)["function"]: v
        for (name, lab), v in samples(text).items()
        if name == "guard_grants_total" and dict(lab)["namespace"] == ns
    }
    assert len(grants) == keys.MAX_UNCONFIGURED_NAMES + 1
    assert grants[keys.OTHER] == 30 and sum(grants.values()) == n
    in_use = {
        dict(lab)["function"]: v
        for (name, lab), v in samples(text).items()
        if name == "guard_in_use"
        and dict(lab)["namespace"] == ns
        and dict(lab)["scope"] == "function"
    }
    assert in_use[keys.OTHER] == 30 and sum(in_use.values()) == n - 10
    for lease in held[10:]:
        assert lease.release()
    u = g.admin.usage()
    assert u["account"]["in_use"] == 0
    assert all(v["in_use"] == 0 for v in u["functions"].values())
    fields = use(rclient, ns)
    assert len([k for k in fields if k.startswith(b"n:")]) == keys.MAX_UNCONFIGURED_NAMES + 1


def test_usage_reads_no_whole_counter_hash(g: guard.Guard, rclient, ns) -> None:
    for i in range(50):
        g.acquire(f"u{i}")

    def hgetalls() -> int:
        return int(rclient.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))

    before = hgetalls()
    g.admin.usage()
    assert hgetalls() == before + 1  # the config (admin-sized); never the counters


# -- 10. HTTP leases need a configured namespace ---------------------------------------------


def test_http_lease_for_an_unconfigured_namespace_is_404(
    http: Any, g: guard.Guard, rclient, ns
) -> None:
    r = http.post(f"/v1/namespaces/{ns}/leases", json={"function": "f", "unavailable": {"f": 1}})
    assert r.status_code == 404
    assert r.json["type"].endswith("namespace-not-found")
    assert r.mimetype == "application/problem+json"
    assert list(rclient.scan_iter(match=f"guard:{{{ns}}}:*")) == []  # nothing written
    assert g.acquire("f").held  # the SDK on Redis works without configuration
    g.admin.set_namespace(max_concurrency=None)
    assert http.post(f"/v1/namespaces/{ns}/leases", json={"function": "f"}).status_code == 201


# -- issue 12 item 10: retry_after -------------------------------------------------------------


def test_retry_after_is_never_below_what_the_holders_allow(g: guard.Guard) -> None:
    g.admin.put_function("job", max_concurrency=1)
    for _ in range(3):
        g.acquire("job", ttl=30).release()  # history: holds of about a millisecond
    g.acquire("job", ttl=30)
    time.sleep(0.3)  # the holder has outlived the usual hold: only its expiry is sure
    with pytest.raises(guard.Throttled) as ei:
        g.acquire("job")
    assert 25 <= ei.value.retry_after <= 30
