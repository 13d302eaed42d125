"""Redis Cluster: six local nodes (three primaries, three replicas), ``redis+cluster://``.

A namespace is one hash tag, so each admission runs in one slot; namespaces spread over
the shards. A namespace's slot is moved to another primary (MIGRATING/IMPORTING + MIGRATE)
while clients acquire and release: MOVED/ASK are followed, no error reaches the caller and
the limit is never exceeded."""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import record
from redis_proc import RedisProcess, free_cluster_port
from test_fault_sentinel import wait_for

import guard
from guard import keys

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RedisProcess]]:
    nodes: list[RedisProcess] = []
    try:
        for _ in range(6):
            nodes.append(
                RedisProcess(
                    free_cluster_port(),
                    args=["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
                ).start()
            )
        cli = shutil.which("redis-cli") or "redis-cli"
        addrs = [f"127.0.0.1:{n.port}" for n in nodes]
        create = [cli, "--cluster", "create", *addrs, "--cluster-replicas", "1", "--cluster-yes"]
        subprocess.run(
            create,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        for n in nodes:
            c = n.client(socket_timeout=1)
            wait_for(lambda c=c: c.cluster("info")["cluster_state"] == "ok", 30, "cluster ok")
            c.close()
        yield nodes
    finally:
        for n in nodes:
            n.cleanup()


def url_of(nodes: list[RedisProcess]) -> str:
    return f"redis+cluster://127.0.0.1:{nodes[0].port}"


def test_namespaces_spread_over_shards_and_throughput(cluster: list[RedisProcess]) -> None:
    store = guard.Guard.from_url(url_of(cluster), timeout=2.0).backend
    rc: Any = store.client  # type: ignore[attr-defined]
    names = [f"tenant-{i}" for i in range(12)]
    owners = {n: rc.get_node_from_key(keys.config_key(n)).name for n in names}
    assert len(set(owners.values())) == 3, owners  # every shard holds some namespaces
    guards = {n: guard.Guard.from_url(url_of(cluster), namespace=n, timeout=2.0) for n in names}
    for g in guards.values():
        g.admin.put_function("work", max_concurrency=1000)
    pairs, stop = [0] * 4, threading.Event()

    def worker(i: int) -> None:
        gs = list(guards.values())
        while not stop.is_set():
            g = gs[pairs[i] % len(gs)]
            g.acquire("work", ttl=10).release()
            pairs[i] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(10)
    took = time.monotonic() - t0
    for g in guards.values():
        assert g.admin.usage()["functions"]["work"]["in_use"] == 0
        g.close()
    record(
        "cluster_pairs_per_s (12 namespaces, 3 shards, 4 threads, 1 process)",
        {"pairs_per_s": round(sum(pairs) / took), "pairs": sum(pairs)},
    )


def test_slot_migration_under_load(cluster: list[RedisProcess]) -> None:
    ns, limit = "moving", 4
    g = guard.Guard.from_url(url_of(cluster), namespace=ns, timeout=2.0, on_unavailable="closed")
    rc: Any = g.backend.client  # type: ignore[attr-defined]
    g.admin.put_function("work", max_concurrency=limit, lease_ttl_seconds=30)
    g.acquire("work").release()
    slot = rc.keyslot(keys.config_key(ns))
    src = rc.get_node_from_key(keys.config_key(ns))
    dst = next(n for n in rc.get_primaries() if n.name != src.name)
    by_port = {n.port: n for n in cluster}
    s_c = by_port[src.port].client(socket_timeout=5)
    d_c = by_port[dst.port].client(socket_timeout=5)
    src_id, dst_id = s_c.cluster("myid"), d_c.cluster("myid")

    lock, holding, peak = threading.Lock(), [0], [0]
    stop, errors, grants = threading.Event(), [], [0]

    def worker() -> None:
        while not stop.is_set():
            try:
                lease = g.acquire("work", ttl=30)
            except guard.Throttled:
                time.sleep(0.002)
                continue
            except guard.GuardError as exc:
                errors.append(exc)
                continue
            with lock:
                holding[0] += 1
                peak[0] = max(peak[0], holding[0])
                grants[0] += 1
            time.sleep(random.uniform(0.001, 0.01))
            with lock:
                holding[0] -= 1
            try:
                lease.release()
            except guard.GuardError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        before = grants[0]
        d_c.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        s_c.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        time.sleep(0.3)  # clients run against the MIGRATING slot (keys still on the source)
        for _ in range(100):
            moved = s_c.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not moved:
                break
            s_c.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *moved)
        time.sleep(0.3)  # keys on the target, slot still MIGRATING: ASK redirects
        for n in cluster:
            c = n.client(socket_timeout=5)
            if c.execute_command("ROLE")[0] == b"master":
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            c.close()
        time.sleep(0.5)  # MOVED: the clients' slot maps catch up
        after = grants[0]
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors[:3]
    assert peak[0] <= limit
    assert after > before
    assert s_c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    # cfg, use, exp, lease, and the audit stream of the config writes
    assert d_c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 5
    assert g.admin.usage()["functions"]["work"]["in_use"] == 0
    assert g.backend.epoch(ns) == d_c.info("server")["run_id"]  # type: ignore[attr-defined]
    record(
        "cluster_slot_migration_under_load",
        {"grants": grants[0], "errors": len(errors), "peak_holders": peak[0], "limit": limit},
    )
    s_c.close()
    d_c.close()
    g.close()


def test_many_threads_on_a_cluster_wait_for_a_connection(cluster: list[RedisProcess]) -> None:
    """Each node's pool blocks: 60 threads over 4 connections per node, none fails."""
    import redis
    from test_pool import hammer

    g = guard.Guard.from_url(
        url_of(cluster), namespace="many", max_connections=4, timeout=1.0, on_unavailable="closed"
    )
    try:
        g.admin.put_function("f", max_concurrency=5)
        h = hammer(g, threads=60, per_thread=3, hold=0.002, wait=20.0)
        assert h.errors == [] and h.unavailable == 0 and h.runs == 180, vars(h)
        assert h.peak <= 5
        assert g.admin.usage()["functions"]["f"]["in_use"] == 0
        client = g.backend.client  # type: ignore[attr-defined]
        pools = [client.get_redis_connection(n).connection_pool for n in client.get_nodes()]
        assert pools and all(
            isinstance(p, redis.BlockingConnectionPool) and p.max_connections == 4 for p in pools
        )
    finally:
        g.close()
