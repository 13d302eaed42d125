"""Waiting at scale (issue 18): many threads per process wait for a max-N function, hold each
slot a fixed time and count holders *outside* the SDK (INCR/DECR on a side connection, as
contention_worker does). Used by test_waiting_scale and, run as a script, to measure:

    .venv/bin/python tests/waiting_worker.py [--procs 4] [--threads 50] [--seconds 10] [--group]

It starts its own redis-server. Reports grants/s (against max / hold), peak holders, errors,
timed-out waits and the order check: a waiter that started waiting more than `eps` before
another was granted no later (within `eps`) than it, except when its wait ran out."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from typing import Any

import redis

import guard


def run(
    url: str, ns: str, threads: int, seconds: float, hold: float, wait: float, start_at: float,
    functions: tuple[str, ...] = ("f",),
) -> dict[str, Any]:  # fmt: skip
    """One process: `threads` threads share one Guard (one subscription) until `seconds`
    after `start_at` (wall clock, shared by the processes); thread i waits for
    ``functions[i % len(functions)]``. Records (start, granted) wall times of every grant."""
    g = guard.Guard.from_url(url, namespace=ns, timeout=5.0)
    side = redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(url, max_connections=16)
    )
    key = f"holders:{{{ns}}}"
    lock = threading.Lock()
    out: dict[str, Any] = {"grants": [], "timeouts": 0, "errors": [], "peak": 0}
    end = start_at + seconds

    def loop(fn: str) -> None:
        grants: list[tuple[float, float]] = []
        timeouts, peak, errors = 0, 0, []
        while time.time() < start_at:
            time.sleep(0.005)
        while (t0 := time.time()) < end:
            try:
                lease = g.acquire(fn, ttl=30, wait=wait)
            except guard.Throttled:
                timeouts += 1
                continue
            except guard.GuardError as exc:
                errors.append(repr(exc))
                time.sleep(0.01)
                continue
            t1 = time.time()
            grants.append((t0, t1))
            peak = max(peak, int(side.incr(key)))
            time.sleep(hold)
            side.decr(key)
            lease.release()
        with lock:
            out["grants"] += grants
            out["timeouts"] += timeouts
            out["errors"] += errors
            out["peak"] = max(out["peak"], peak)

    ts = [
        threading.Thread(target=loop, args=(functions[i % len(functions)],)) for i in range(threads)
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    g.close()
    side.close()
    return out


def order_violations(grants: list[tuple[float, float]], eps: float) -> tuple[int, float]:
    """Pairs (a, b) with start_a < start_b - eps but granted_a > granted_b + eps: how many b
    were overtaken so, and the worst lateness (s)."""
    rs = sorted(grants)
    best, j, bad, worst = float("-inf"), 0, 0, 0.0
    for s, gr in rs:
        while j < len(rs) and rs[j][0] < s - eps:
            best = max(best, rs[j][1])
            j += 1
        if best > gr + eps:
            bad += 1
            worst = max(worst, best - gr)
    return bad, worst


def measure(
    url: str, ns: str, procs: int, threads: int, seconds: float, hold: float = 0.02,
    wait: float = 10.0, max_concurrency: int = 5, group: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """`group`: two functions f1 and f2 (each max `max_concurrency`) in a group "g" of max
    `max_concurrency`, half the threads on each: the group's queue orders them together."""
    g = guard.Guard.from_url(url, namespace=ns, timeout=5.0)
    functions: tuple[str, ...] = ("f",)
    if group:
        functions = ("f1", "f2")
        for fn in functions:
            g.admin.put_function(fn, max_concurrency=max_concurrency)
        g.admin.put_group("g", max_concurrency=max_concurrency, members=list(functions))
    else:
        g.admin.put_function("f", max_concurrency=max_concurrency)
    g.close()
    start_at = time.time() + 1.5 + 0.5 * procs  # every process has started by then
    args = (url, ns, threads, seconds, hold, wait, start_at, functions)
    if procs == 1:
        results = [run(*args)]
    else:
        with mp.get_context("spawn").Pool(procs) as pool:
            results = pool.starmap(run, [args] * procs)
    grants = [x for r in results for x in r["grants"]]
    in_window = [x for x in grants if x[1] <= start_at + seconds]
    rate = len(in_window) / seconds
    ideal = max_concurrency / hold
    # The first round starts every thread at the same instant: their start times then say
    # when a thread was scheduled, not when its acquire reached Redis, so the order check
    # looks at waits that started after the burst (every later acquire is a new waiter).
    steady = [x for x in grants if x[0] >= start_at + 0.5]
    bad, worst = order_violations(steady, 0.05)
    bad_all, _ = order_violations(grants, 0.05)
    waits = sorted(gr - s for s, gr in grants)
    return {
        "functions": len(functions),
        "procs": procs,
        "threads": threads,
        "seconds": seconds,
        "grants_per_s": round(rate, 1),
        "ideal_per_s": ideal,
        "fraction_of_ideal": round(rate / ideal, 3),
        "peak_holders": max(r["peak"] for r in results),
        "errors": [e for r in results for e in r["errors"]],
        "timeouts": sum(r["timeouts"] for r in results),
        "order_violations_50ms": bad,
        "order_violations_50ms_with_start_burst": bad_all,
        "worst_overtake_s": round(worst, 3),
        "p50_wait_s": round(waits[len(waits) // 2], 3) if waits else None,
        "p99_wait_s": round(waits[int(len(waits) * 0.99)], 3) if waits else None,
        "grants": len(grants),
    }


def main() -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from redis_proc import RedisProcess

    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--threads", type=int, nargs="+", default=[200, 50])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--group", action="store_true", help="two functions in a max-5 group")
    a = ap.parse_args()
    server = RedisProcess().start()
    try:
        for i, (p, t) in enumerate(zip(a.procs, a.threads, strict=True)):
            print(
                json.dumps(measure(server.url, f"w{i}", p, t, a.seconds, group=a.group)), flush=True
            )
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
