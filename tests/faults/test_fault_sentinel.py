"""Sentinel failover with a lagging replica: over-admission without the failover
quarantine, none with it.

One primary, one replica whose replication link runs through the proxy with 1 s of added
latency (so the replica is always ~1 s behind), three sentinels (down-after 500 ms). The
function is filled to its max, the primary is SIGKILLed at once, and a client keeps asking
for slots through ``redis+sentinel://`` while the original leases are still live."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from conftest import record
from proxy import Proxy
from redis_proc import RedisProcess, SentinelProcess

import guard

pytestmark = pytest.mark.fault

MAX, TTL, LAG = 5, 4.0, 1.0


def wait_for(cond: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sentinel_setup(
    make_proxy: Callable[[int], Proxy],
) -> Iterator[tuple[RedisProcess, RedisProcess, Proxy, list[SentinelProcess]]]:
    procs: list[RedisProcess] = []
    try:
        primary = RedisProcess().start()
        procs.append(primary)
        link = make_proxy(primary.port)
        link.set_mode("pass", delay=LAG)
        replica = RedisProcess(args=["--replicaof", "127.0.0.1", str(link.port)]).start()
        procs.append(replica)
        rc = replica.client(socket_timeout=1)
        wait_for(lambda: rc.info("replication")["master_link_status"] == "up", 20, "replication")
        rc.close()
        sentinels = [SentinelProcess("svc", primary.port).start() for _ in range(3)]
        procs.extend(sentinels)
        for s in sentinels:
            sc = s.client(socket_timeout=1)
            wait_for(lambda sc=sc: len(sc.sentinel_slaves("svc")) == 1, 20, "replica seen")
            wait_for(
                lambda sc=sc: int(sc.sentinel_master("svc")["num-other-sentinels"]) == 2,
                20,
                "sentinels see each other",
            )
            sc.close()
        yield primary, replica, link, sentinels
    finally:
        for p in procs:
            p.cleanup()


@pytest.mark.parametrize("quarantine", [False, True])
def test_failover_over_admission(sentinel_setup: Any, quarantine: bool) -> None:
    primary, replica, _link, sentinels = sentinel_setup
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    g = guard.Guard.from_url(
        f"redis+sentinel://{hosts}/svc",
        namespace="ha",
        timeout=0.2,
        on_unavailable="closed",
        quarantine=quarantine,
    )
    try:
        g.admin.put_function("work", max_concurrency=MAX, lease_ttl_seconds=TTL)
        g.acquire("work").release()  # with quarantine: stores the epoch
        pc, rc = primary.client(socket_timeout=1), replica.client(socket_timeout=1)
        offset = pc.info("replication")["master_repl_offset"]
        wait_for(lambda: rc.info("replication")["slave_repl_offset"] >= offset, 10, "replica sync")
        pc.close()
        held = [g.acquire("work") for _ in range(MAX)]  # the replica is LAG s behind these
        primary.kill()
        killed = time.monotonic()
        live_until = min(lease.expires_at for lease in held)  # server time
        over, refused_q, first_answer = 0, 0, None
        granted: list[guard.Lease] = []
        deadline = killed + TTL + 8
        while time.monotonic() < deadline:
            try:
                lease = g.acquire("work")
            except guard.Throttled as t:
                first_answer = first_answer or time.monotonic()
                refused_q += t.scope == "quarantine"
            except guard.GuardUnavailable:
                pass  # the failover is still under way
            else:
                first_answer = first_answer or time.monotonic()
                if lease.expires_at - lease.ttl < live_until:
                    over += 1  # granted while MAX other leases were still live
                granted.append(lease)
                if lease.expires_at - lease.ttl >= live_until:
                    break  # past the old leases' lifetime: grants are legitimate again
            time.sleep(0.02)
        assert first_answer is not None, "no answer from a new primary"
        failover = first_answer - killed
        assert rc.info("replication")["role"] == "master"
        rc.close()
        label = "on" if quarantine else "off"
        record(
            f"sentinel_failover_quarantine_{label}",
            {
                "failover_s": round(failover, 3),
                "over_admitted": over,
                "quarantine_refusals": refused_q,
                "max": MAX,
                "lag_s": LAG,
                "ttl_s": TTL,
            },
        )
        if quarantine:
            assert over == 0 and refused_q > 0
        else:
            assert over > 0  # the replica lost the leases written in its last LAG seconds
        assert granted and granted[-1].expires_at - granted[-1].ttl >= live_until - 1
    finally:
        g.close()


def test_many_threads_through_sentinel_wait_for_a_connection(sentinel_setup: Any) -> None:
    """The Sentinel client's pool blocks too: 60 threads over 4 connections, none fails."""
    import redis
    from test_pool import hammer

    hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinel_setup[3])
    g = guard.Guard.from_url(
        f"redis+sentinel://{hosts}/svc",
        namespace="many",
        timeout=1.0,
        max_connections=4,
        on_unavailable="closed",
    )
    try:
        pool = g.backend.client.connection_pool  # type: ignore[attr-defined]
        assert isinstance(pool, redis.BlockingConnectionPool) and pool.max_connections == 4
        g.admin.put_function("f", max_concurrency=5)
        h = hammer(g, threads=60, per_thread=3, hold=0.002, wait=20.0)
        assert h.errors == [] and h.unavailable == 0 and h.runs == 180, vars(h)
        assert h.peak <= 5
        assert g.admin.usage()["functions"]["f"]["in_use"] == 0
    finally:
        g.close()
