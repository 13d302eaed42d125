"""The statements of docs/guarantees.md that are not fault injection, one test each."""

from __future__ import annotations

import threading
import time

import pytest

import guard


def test_s1_concurrent_acquires_grant_exactly_max(g: guard.Guard) -> None:
    """Atomic admission: 40 threads race for 7 slots; exactly 7 win."""
    g.admin.put_function("race", max_concurrency=7)
    won: list[guard.Lease] = []
    barrier = threading.Barrier(40)
    lock = threading.Lock()

    def racer() -> None:
        barrier.wait(5)
        try:
            lease = g.acquire("race", ttl=30)
        except guard.Throttled:
            return
        with lock:
            won.append(lease)

    threads = [threading.Thread(target=racer) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(won) == 7
    assert g.admin.usage()["functions"]["race"]["in_use"] == 7


def test_release_is_idempotent(g: guard.Guard) -> None:
    lease = g.acquire("once", ttl=30)
    assert lease.release() is True
    assert lease.release() is False
    assert g.admin.usage()["account"]["in_use"] == 0


def test_acquire_retry_with_same_lease_id_is_one_lease(g: guard.Guard) -> None:
    g.admin.put_function("retry", max_concurrency=1)
    lid = "0123456789abcdef0123456789abcdef"
    a = g.acquire("retry", ttl=30, lease_id=lid)
    b = g.acquire("retry", ttl=30, lease_id=lid)  # a lost reply retried: same lease, no 2nd slot
    assert (a.fence, a.lease_id) == (b.fence, b.lease_id)
    assert g.admin.usage()["functions"]["retry"]["in_use"] == 1


def test_expired_lease_is_not_renewed_and_its_slot_moves_on(g: guard.Guard) -> None:
    """No mutual exclusion: a holder that outlives its TTL loses the slot while it may still be
    running; renew reports the loss. Fencing tokens let a downstream store reject it."""
    g.admin.put_function("slow", max_concurrency=1)
    old = g.acquire("slow", ttl=0.3)
    time.sleep(0.5)
    new = g.acquire("slow", ttl=30)  # granted although `old`'s holder may still be working
    assert old.renew() is False and old.lost
    assert new.fence > old.fence
    downstream = {"fence": 0}

    def write(fence: int) -> bool:  # what a fenced store does: accept only increasing tokens
        if fence < downstream["fence"]:
            return False
        downstream["fence"] = fence
        return True

    assert write(new.fence) is True
    assert write(old.fence) is False  # the stale holder's write is rejected


def test_limit_counts_leases_not_executions(g: guard.Guard) -> None:
    """With on_unavailable="open" a function runs unguarded when the store is out of reach;
    the limit counts leases in Redis, not the executions that happen meanwhile."""
    dead = guard.Guard.from_url("redis://127.0.0.1:1/0", namespace="x", timeout=0.05)
    try:
        lease = dead.acquire("work")
        assert lease.unguarded and not lease.held
        with pytest.raises(guard.GuardUnavailable):
            guard.Guard.from_url(
                "redis://127.0.0.1:1/0", timeout=0.05, on_unavailable="closed"
            ).acquire("work")
    finally:
        dead.close()


def test_quarantine_is_decided_in_the_script(redis_server, ns: str, rclient) -> None:  # type: ignore[no-untyped-def]
    """A stored epoch that differs from the serving process's run_id (as after a failover)
    makes the script refuse every new grant for the longest lease TTL; held leases are
    still answered on a retry, and clients without quarantine are unaffected by design."""
    g = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0, quarantine=True)
    try:
        g.admin.put_function("q", max_concurrency=5, lease_ttl_seconds=2)
        held = g.acquire("q", ttl=2, lease_id="00" * 16)
        use = f"guard:{{{ns}}}:use"
        assert rclient.hget(use, "ep") == rclient.info("server")["run_id"].encode()
        rclient.hset(use, "ep", "another-process")  # what a promoted replica holds
        with pytest.raises(guard.Throttled) as refused:
            g.acquire("q", ttl=2)
        assert refused.value.scope == "quarantine"
        assert 1.5 < refused.value.retry_after <= 2.0  # the longest TTL (2 s cap)
        again = g.acquire("q", ttl=2, lease_id="00" * 16)  # a retry of a held lease
        assert again.fence == held.fence
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # grants resume by themselves after the TTL
            try:
                g.acquire("q", ttl=2).release()
                break
            except guard.Throttled:
                time.sleep(0.1)
        else:
            raise AssertionError("quarantine never ended")
    finally:
        g.close()
