"""guard's scaling workloads: held leases (cost and memory per lease) and a three-shard cluster.

Both use only guard's public SDK (``guard.Guard``, ``g.admin``) plus plain Redis commands to
read ``INFO``, ``MEMORY USAGE`` and ``CLUSTER`` state; nothing here knows guard's key layout
beyond the ``guard:{ns}:*`` prefix that ``SCAN`` lists.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import time
import uuid
from typing import Any

import harness
from harness import RedisServer, median, percentile
from subjects import GUARD_FUNCTION, GUARD_GROUP

HELD_FUNCTIONS = 1000  # held leases are spread over this many functions
FILL_THREADS = 4  # Guards (connections) filling the namespace


def _configure(g: Any, account: int, group: int, function: int) -> None:
    g.admin.set_namespace(max_concurrency=account)
    g.admin.put_group(GUARD_GROUP, max_concurrency=group, members=[GUARD_FUNCTION])
    g.admin.put_function(GUARD_FUNCTION, max_concurrency=function)


def _fill(fillers: list[Any], n: int) -> None:
    """Acquire ``n`` leases (TTL 1 h) over ``min(n, 1000)`` functions, one thread per Guard.

    The Guards are opened (and connected) by the caller before the memory snapshot, so their
    client buffers are not counted as lease memory."""

    def work(part: int) -> None:
        for i in range(part, n, len(fillers)):
            fillers[part].acquire(f"fn-{i % HELD_FUNCTIONS:04d}", ttl=3600.0)

    threads = [threading.Thread(target=work, args=(p,)) for p in range(len(fillers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _key_usage(client: Any, ns: str) -> dict[str, dict[str, int]]:
    """``MEMORY USAGE … SAMPLES 0`` (exact) and size of every key ``SCAN MATCH guard:{ns}:*``."""
    out: dict[str, dict[str, int]] = {}
    for raw in client.scan_iter(match=f"guard:{{{ns}}}:*", count=1000):
        key = raw.decode()
        kind = client.type(key).decode()
        size = {"hash": client.hlen, "zset": client.zcard, "set": client.scard}.get(kind)
        out[key] = {
            "bytes": int(client.memory_usage(key, samples=0) or 0),
            "type": kind,  # type: ignore[dict-item]
            "entries": int(size(key)) if size else 1,
        }
    return out


def guard_held_scaling(
    server: RedisServer, sizes: tuple[int, ...], pairs: int, rounds: int
) -> list[dict[str, Any]]:
    """For each N: N leases held over 1,000 functions, then ``pairs`` acquire+release pairs of
    another function (three levels checked) per round; Redis cost per pair and
    ``used_memory`` delta per held lease, with ``MEMORY USAGE`` of each of the namespace's keys.
    """
    import guard

    client = server.client()
    rows: list[dict[str, Any]] = []
    try:
        for n in sizes:
            ns = f"held-{uuid.uuid4().hex[:12]}"
            g = guard.Guard.from_url(server.url, namespace=ns, timeout=5)
            fillers = [
                guard.Guard.from_url(server.url, namespace=ns, timeout=5)
                for _ in range(FILL_THREADS)
            ]
            try:
                _configure(g, account=n + 10_000, group=10_000, function=10_000)
                for f in (g, *fillers):  # connected, script loaded, the namespace's keys exist
                    f.acquire(GUARD_FUNCTION, ttl=30.0).release()
                probe = harness.InfoProbe(client)
                mem0 = probe.snapshot().used_memory
                keys0 = _key_usage(client, ns)
                _fill(fillers, n)
                mem1 = probe.snapshot().used_memory
                probe.close()
                keys1 = _key_usage(client, ns)
                held = int(g.admin.usage()["account"]["in_use"])
                if held != n:
                    raise RuntimeError(f"held-lease run: {held} leases held, expected {n}")
                costs, p50s = [], []
                for _ in range(rounds):
                    lat: list[float] = []

                    def pair(lat: list[float] = lat, g: Any = g) -> None:
                        t0 = time.perf_counter_ns()
                        g.acquire(GUARD_FUNCTION, ttl=30.0).release()
                        lat.append((time.perf_counter_ns() - t0) / 1000)

                    costs.append(harness.redis_cost(client, pair, pairs))
                    p50s.append(percentile(sorted(lat), 0.5))
                keys = {
                    k: {**v, "delta_bytes": v["bytes"] - keys0.get(k, {}).get("bytes", 0)}
                    for k, v in keys1.items()
                }
                rows.append(
                    {
                        "subject": "guard SDK",
                        "held": held,
                        "functions": min(n, HELD_FUNCTIONS),
                        "cpu_us": median([c.cpu_us for c in costs]),
                        "cmd_us": median([c.top_level_us(("evalsha",)) for c in costs]),
                        "script_us": median([c.script_us for c in costs]),
                        "p50_us": median(p50s),
                        "bytes_per_lease": (mem1 - mem0) / held,
                        "used_memory_delta": mem1 - mem0,
                        "keys": keys,
                        "pairs": pairs,
                    }
                )
                for k in keys1:
                    client.delete(k)
            finally:
                for f in (g, *fillers):
                    f.close()
    finally:
        client.close()
    return rows


# --------------------------------------------------------------------------- cluster


def pick_namespaces(nodes: list[RedisServer], count: int) -> tuple[list[str], list[int]]:
    """``count`` namespace names ordered round-robin over the shards (the first three on three
    different shards, twelve as four per shard), and the shard of each."""
    per_shard: list[list[str]] = [[] for _ in nodes]
    want = -(-count // len(nodes))
    i = 0
    while min(len(q) for q in per_shard) < want and i < 100_000:
        name = f"tenant-{i:03d}"
        q = per_shard[harness.slot_owner(nodes, f"guard:{{{name}}}:exp")]
        if len(q) < want:
            q.append(name)
        i += 1
    names, shards = [], []
    for r in range(want):
        for s, q in enumerate(per_shard):
            names.append(q[r])
            shards.append(s)
    return names[:count], shards[:count]


def _cluster_worker(url: str, ns: str, seconds: float, ready: Any, go: Any, q: Any) -> None:
    import guard

    try:
        g = guard.Guard.from_url(url, namespace=ns, timeout=5)
        g.acquire(GUARD_FUNCTION, ttl=30.0).release()  # connect, route, load the script
        lat: list[int] = []
        ready.wait()
        go.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter_ns()
            g.acquire(GUARD_FUNCTION, ttl=30.0).release()
            lat.append(time.perf_counter_ns() - t0)
        t_end = time.monotonic()
        g.close()
        q.put({"lat": lat, "t_end": t_end})
    except BaseException as exc:  # report, never hang the parent
        with contextlib.suppress(Exception):
            ready.abort()
        q.put({"error": repr(exc)})
        raise


def _cluster_run(
    nodes: list[RedisServer], url: str, names: list[str], procs: int, seconds: float
) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    ready, go, q = ctx.Barrier(procs + 1), ctx.Event(), ctx.Queue()
    ps = [
        ctx.Process(
            target=_cluster_worker, args=(url, names[w % len(names)], seconds, ready, go, q)
        )
        for w in range(procs)
    ]
    probes = [harness.InfoProbe(n.client()) for n in nodes]
    outs: list[dict[str, Any]] = []
    try:
        for p in ps:
            p.start()
        ready.wait(timeout=60)
        before = [pr.snapshot() for pr in probes]
        t_go = time.monotonic()
        go.set()
        for _ in ps:
            outs.append(q.get(timeout=seconds + 60))
        after = [pr.snapshot() for pr in probes]
    finally:
        go.set()
        for p in ps:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        for pr in probes:
            pr.close()
    errors = [o["error"] for o in outs if "error" in o]
    if errors:
        raise RuntimeError(f"cluster worker failed: {errors[:3]}")
    lat = sorted(x / 1000 for o in outs for x in o["lat"])
    elapsed = max(o["t_end"] for o in outs) - t_go
    shard_pairs = [
        (a.calls.get("evalsha", 0) - b.calls.get("evalsha", 0)) / 2
        for b, a in zip(before, after, strict=True)
    ]
    shard_cpu = [
        (a.cpu_main_us - b.cpu_main_us) / 1e6 / elapsed for b, a in zip(before, after, strict=True)
    ]
    return {
        "pairs_per_s": len(lat) / elapsed,
        "p50_us": percentile(lat, 0.5),
        "p99_us": percentile(lat, 0.99),
        "shard_pairs_share": [p / max(1.0, sum(shard_pairs)) for p in shard_pairs],
        "shard_cpu": shard_cpu,  # main-thread CPU seconds per second, per shard
    }


def cluster_scaling(
    counts: tuple[int, ...], procs: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """guard SDK pairs/s from ``procs`` processes over 1, 3, 12 namespaces of a local
    three-primary cluster (worker w uses namespace w mod k); interleaved rounds, medians."""
    import guard

    with harness.redis_cluster(3) as nodes:
        url = f"redis+cluster://127.0.0.1:{nodes[0].port}"
        names, shards = pick_namespaces(nodes, max(counts))
        for ns in names:
            g = guard.Guard.from_url(url, namespace=ns, timeout=5)
            try:
                _configure(g, account=1_000_000, group=500_000, function=250_000)
            finally:
                g.close()
        runs: dict[int, list[dict[str, Any]]] = {k: [] for k in counts}
        for rnd in range(rounds):
            order = list(counts[rnd % len(counts) :] + counts[: rnd % len(counts)])
            for k in order:
                r = _cluster_run(nodes, url, names[:k], procs, seconds)
                runs[k].append(r)
                print(
                    f"cluster round {rnd + 1}/{rounds} namespaces={k:<3} {r['pairs_per_s']:8.0f}"
                    f" pairs/s shares {[round(x, 2) for x in r['shard_pairs_share']]}",
                    flush=True,
                )
        rows = []
        for k in counts:
            rs = runs[k]
            rows.append(
                {
                    "namespaces": k,
                    "shards_used": len(set(shards[:k])),
                    "pairs_per_s": median([r["pairs_per_s"] for r in rs]),
                    "pairs_per_s_min": min(r["pairs_per_s"] for r in rs),
                    "pairs_per_s_max": max(r["pairs_per_s"] for r in rs),
                    "p50_us": median([r["p50_us"] for r in rs]),
                    "p99_us": median([r["p99_us"] for r in rs]),
                    "shard_pairs_share": [
                        median([r["shard_pairs_share"][s] for r in rs]) for s in range(3)
                    ],
                    "shard_cpu": [median([r["shard_cpu"][s] for r in rs]) for s in range(3)],
                }
            )
        return {
            "procs": procs,
            "seconds": seconds,
            "rounds": rounds,
            "placement": dict(zip(names, shards, strict=True)),
            "ports": [n.port for n in nodes],
            "rows": rows,
        }
