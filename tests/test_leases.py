"""Lease lifecycle against a real redis-server: expiry and the expired counter, renew never
resurrects, idempotent release, retried acquire with the same id, TTL caps, NOSCRIPT
recovery, backstop TTLs."""

from __future__ import annotations

import time

import pytest
import redis

import guard
from guard import keys


def use(rclient: redis.Redis, ns: str) -> dict[bytes, bytes]:
    return rclient.hgetall(keys.lease_keys(ns)[1])


def expire_now(rclient: redis.Redis, ns: str, lease: guard.Lease) -> None:
    """Wait until the lease's server-side expiry has passed (short TTLs only)."""
    while True:
        sec, usec = rclient.time()
        if sec * 1000 + usec // 1000 > lease.expires_at * 1000:
            return
        time.sleep(0.01)


def test_expired_lease_is_reaped_and_counted(g: guard.Guard, rclient, ns: str) -> None:
    g.admin.put_function("ingest", max_concurrency=1)
    lease = g.acquire("ingest", ttl=0.05)
    expire_now(rclient, ns, lease)
    other = g.acquire("ingest")  # the expired lease was reaped inside this acquire
    assert other.held
    assert use(rclient, ns)[b"x:ingest"] == b"1"
    assert g.admin.usage()["functions"]["ingest"]["in_use"] == 1


def test_usage_reaps_expired_leases(g: guard.Guard, rclient, ns: str) -> None:
    lease = g.acquire("job", ttl=0.05)
    expire_now(rclient, ns, lease)
    assert g.admin.usage()["account"]["in_use"] == 0
    assert use(rclient, ns)[b"x:job"] == b"1"


def test_renew_extends_and_never_resurrects(g: guard.Guard, rclient, ns: str) -> None:
    lease = g.acquire("job", ttl=0.2)
    first = lease.expires_at
    assert lease.renew(ttl=5) and lease.expires_at > first
    assert lease.ttl == pytest.approx(5)
    lease.renew(ttl=0.05)
    expire_now(rclient, ns, lease)
    assert lease.renew() is False
    assert lease.lost and not lease.held
    assert g.admin.usage()["functions"] == {}  # not re-created
    assert use(rclient, ns)[b"x:job"] == b"1"  # counted once as expired
    assert lease.release() is False


def test_renew_after_release_reports_lost(g: guard.Guard) -> None:
    lease = g.acquire("job")
    other_handle = guard.Lease(g.backend, g.namespace, "job", lease.lease_id, held=True)
    assert lease.release() is True
    assert other_handle.renew() is False


def test_release_is_idempotent(g: guard.Guard) -> None:
    lease = g.acquire("job")
    # e.g. a retried release
    twin = guard.Lease(g.backend, g.namespace, "job", lease.lease_id, held=True)
    assert lease.release() is True
    assert lease.release() is False
    assert twin.release() is False
    assert g.admin.usage()["account"]["in_use"] == 0


def test_release_after_expiry_is_not_held(g: guard.Guard, rclient, ns: str) -> None:
    lease = g.acquire("job", ttl=0.05)
    expire_now(rclient, ns, lease)
    assert lease.release() is False
    assert use(rclient, ns)[b"x:job"] == b"1"
    assert g.admin.usage()["account"]["in_use"] == 0


def test_retried_acquire_with_same_id_is_one_lease(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=1)
    lid = "0123456789abcdef0123456789abcdef"
    a = g.acquire("ingest", lease_id=lid)
    b = g.acquire("ingest", lease_id=lid)  # at the limit, yet the same lease comes back
    assert (a.lease_id, a.fence, a.expires_at) == (b.lease_id, b.fence, b.expires_at)
    assert g.admin.usage()["functions"]["ingest"]["in_use"] == 1
    g.admin.put_function("ingest", max_concurrency=5)
    c = g.acquire("ingest", lease_id=lid)  # with room too
    assert c.fence == a.fence
    assert g.admin.usage()["functions"]["ingest"]["in_use"] == 1


def test_same_id_for_another_function_is_a_conflict(g: guard.Guard) -> None:
    lid = "0123456789abcdef0123456789abcdef"
    g.acquire("a", lease_id=lid)
    with pytest.raises(guard.ConflictError):
        g.acquire("b", lease_id=lid)


def test_ttl_is_capped_by_lease_ttl_seconds(g: guard.Guard) -> None:
    g.admin.put_function("short", lease_ttl_seconds=2)
    assert g.acquire("short", ttl=600).ttl == pytest.approx(2)
    assert g.acquire("short").ttl == pytest.approx(2)  # default: the function's setting
    assert g.acquire("unconfigured").ttl == pytest.approx(keys.DEFAULT_LEASE_TTL)
    lease = g.acquire("short", ttl=1)
    assert lease.renew(ttl=100) and lease.ttl == pytest.approx(2)


class FakeContext:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def get_remaining_time_in_millis(self) -> int:
        return self.ms


def test_ttl_follows_the_lambda_deadline(g: guard.Guard) -> None:
    lease = g.acquire("fn", context=FakeContext(3000))
    assert lease.ttl == pytest.approx(3.0 + g.lease_margin)
    assert g.acquire("fn", context=FakeContext(3000), ttl=10).ttl == pytest.approx(10)


def test_noscript_is_recovered(g: guard.Guard, rclient) -> None:
    g.acquire("job").release()
    rclient.script_flush()
    lease = g.acquire("job")  # EVALSHA fails with NOSCRIPT, the script is loaded again
    rclient.script_flush()
    assert lease.renew()
    rclient.script_flush()
    assert lease.release()
    rclient.script_flush()
    assert g.admin.usage()["account"]["in_use"] == 0


def test_keys_carry_backstop_ttls(g: guard.Guard, rclient, ns: str) -> None:
    g.admin.set_namespace(max_concurrency=10)
    g.acquire("job")
    for k in keys.lease_keys(ns)[1:]:
        ttl = rclient.pttl(k)
        assert 0 < ttl <= keys.BACKSTOP_TTL * 1000, k
    assert rclient.pttl(keys.config_key(ns)) == -1  # limits never expire by themselves


def test_lease_listing(g: guard.Guard) -> None:
    a = g.acquire("a")
    g.acquire("b")
    infos = g.backend.leases(g.namespace)
    assert [i.function for i in infos] == ["a", "b"]
    only_a = g.backend.leases(g.namespace, "a")
    assert [(i.lease_id, i.fence) for i in only_a] == [(a.lease_id, a.fence)]
    a.release()
    assert [i.function for i in g.backend.leases(g.namespace)] == ["b"]
