"""The contended waiting workload (issue 18): many callers queue for a max-5 function that each
caller holds 20 ms (ideal: 5 / 0.02 s = 250 grants/s), on one private redis-server.

    .venv/bin/python bench/run_all.py --waiting [--quick]   # only this; the full run includes it

Subjects, interleaved over rounds (each round runs every subject once, starting at a different
one), medians quoted:

- **guard wait=**: ``g.acquire(fn, wait=10)``, the threads of one process on one Guard (one
  subscription; tickets in Redis: first come, first served; a release wakes the tickets it
  names).
- **guard polling**: ``g.acquire(fn)`` in a loop, sleeping each Throttled's ``retry_after``
  (at most 1 s, as the SDK's waiters: with no hold history yet the hint is the time to the
  earliest lease expiry, 30 s here).
- **redis-semaphore**: ``tryAcquire`` retried every 10 ms (its ``acquire()`` loop's default
  ``retryInterval``), async callers on one connection (bench/peers, mode ``shared``).
- **bottleneck**: ``limiter.schedule`` with ``maxConcurrent`` and the Redis datastore (its own
  queue and pub/sub), async callers on one limiter.

Reported: pairs/s; p99 wait — guard: from the first try to the grant; the Node peers: the
pair's latency without the hold (the wait, plus the acquire and release round trips); attempts
per grant (guard: the acquire scripts run, from the namespace's grant and throttle counters;
the peers: as bench/peers/common.mjs counts them; bottleneck queues, so 1); peak holders
counted outside the library (INCR/DECR on a side connection)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import harness
import redis
from harness import BenchConfig, median
from subjects import NODE_SUBJECTS

import guard

LIMIT = 5
HOLD_S = 0.02
WAIT_S = 10.0
PEER_RETRY_MS = 10.0  # redis-semaphore's default retryInterval


@dataclass(frozen=True)
class WaitPlan:
    seconds: float
    rounds: int
    callers: int


QUICK = WaitPlan(seconds=3.0, rounds=1, callers=100)
FULL = WaitPlan(seconds=8.0, rounds=3, callers=100)


def run_guard(url: str, mode: str, callers: int, seconds: float) -> dict[str, Any]:
    """`callers` threads of one process on one Guard; mode "wait" or "poll"."""
    ns = f"w{uuid.uuid4().hex[:10]}"
    g = guard.Guard.from_url(url, namespace=ns, timeout=5.0)
    g.admin.put_function("f", max_concurrency=LIMIT)
    side = redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(url, max_connections=16)
    )
    key = f"bench:holders:{{{ns}}}"
    lock = threading.Lock()
    waits: list[float] = []
    peak = [0]
    errors: list[str] = []
    start_at = time.monotonic() + 1.0
    end = start_at + seconds

    def loop() -> None:
        mine: list[float] = []
        top = 0
        while time.monotonic() < start_at:
            time.sleep(0.005)
        while (t0 := time.monotonic()) < end:
            try:
                if mode == "wait":
                    lease = g.acquire("f", ttl=30, wait=WAIT_S)
                else:
                    while True:
                        try:
                            lease = g.acquire("f", ttl=30)
                            break
                        except guard.Throttled as e:
                            if time.monotonic() >= end:
                                raise
                            # the hint, at most 1 s (as the SDK's own waiters): with no hold
                            # history yet it is the time to the earliest expiry (30 s here)
                            time.sleep(min(max(e.retry_after, 0.001), 1.0))
            except guard.Throttled:
                continue  # a wait that ran out (none expected: 10 s)
            except guard.GuardError as exc:
                errors.append(repr(exc))
                time.sleep(0.01)
                continue
            mine.append(time.monotonic() - t0)
            top = max(top, int(side.incr(key)))
            time.sleep(HOLD_S)
            side.decr(key)
            lease.release()
        with lock:
            waits.extend(mine)
            peak[0] = max(peak[0], top)

    ts = [threading.Thread(target=loop) for _ in range(callers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    use = g.backend.client.hgetall(f"guard:{{{ns}}}:use")  # type: ignore[attr-defined]
    grants = int(use.get(b"n:f", 0))
    refused = sum(int(v) for k, v in use.items() if k.startswith(b"t:f|"))
    g.close()
    side.close()
    side.connection_pool.disconnect()  # a pool passed in is not closed by close()
    waits.sort()
    return {
        "pairs_per_s": len(waits) / seconds,
        "p99_wait_ms": waits[int(len(waits) * 0.99)] * 1000 if waits else float("nan"),
        "attempts_per_grant": (grants + refused) / grants if grants else float("nan"),
        "peak_holders": peak[0],
        "errors": len(errors),
    }


def run_peer(
    server: harness.RedisServer, name: str, callers: int, seconds: float
) -> dict[str, Any]:
    subject = next(s for s in NODE_SUBJECTS if s.name == name and s.mode == "shared")
    cfg = BenchConfig(server.url, f"bench:wait:{uuid.uuid4().hex[:10]}", LIMIT)
    r = harness.run_node(
        subject, cfg, server.port, callers, seconds, "contended", HOLD_S * 1000, PEER_RETRY_MS
    )
    return {
        "pairs_per_s": r.pairs_per_s,
        "p99_wait_ms": (r.p99_us or float("nan")) / 1000,
        "attempts_per_grant": r.attempts_per_pair or float("nan"),
        "peak_holders": r.max_holders,
        "errors": 0,
    }


SUBJECTS = ("guard wait=", "guard polling", "redis-semaphore", "bottleneck")


def measure(server: harness.RedisServer, subject: str, plan: WaitPlan) -> dict[str, Any]:
    if subject == "guard wait=":
        return run_guard(server.url, "wait", plan.callers, plan.seconds)
    if subject == "guard polling":
        return run_guard(server.url, "poll", plan.callers, plan.seconds)
    return run_peer(server, subject, plan.callers, plan.seconds)


def run(
    plan: WaitPlan,
    server: harness.RedisServer | None = None,
    failures: list[str] | None = None,
) -> dict[str, Any]:
    """Every subject over the plan's rounds, on ``server`` (else a private one); prints the
    medians and returns what results.json keeps under "waiting" (docs/benchmarks.md's "Waiting
    at scale"). The Node peers are left out (named in "skipped") without bench/node_modules.
    With ``failures`` a Node driver that crashes is recorded there and the rounds go on."""
    subjects = SUBJECTS if harness.node_modules_ready() else SUBJECTS[:2]
    skipped = [s for s in SUBJECTS if s not in subjects]
    if skipped:
        print(f"bench/node_modules missing: {', '.join(skipped)} skipped", flush=True)
    got: dict[str, list[dict[str, Any]]] = {s: [] for s in subjects}
    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(harness.redis_server())
        for rnd in range(plan.rounds):
            order = subjects[rnd % len(subjects) :] + subjects[: rnd % len(subjects)]
            for s in order:
                try:
                    r = measure(server, s, plan)
                except RuntimeError as exc:
                    if failures is None or s.startswith("guard"):
                        raise
                    failures.append(f"waiting round {rnd + 1}: {s}: {exc!s:.300}")
                    print(f"!!! {failures[-1]}", flush=True)
                    continue
                got[s].append(r)
                print(f"round {rnd + 1}/{plan.rounds} {s:16} {json.dumps(r)}", flush=True)
    out: dict[str, dict[str, Any]] = {}
    for s, rs in got.items():
        if not rs:
            continue
        a: dict[str, Any] = {
            k: median([float(r[k]) for r in rs])
            for k in ("pairs_per_s", "p99_wait_ms", "attempts_per_grant")
        }
        a["pairs_per_s_min"] = min(float(r["pairs_per_s"]) for r in rs)
        a["pairs_per_s_max"] = max(float(r["pairs_per_s"]) for r in rs)
        a["peak_holders"] = max(int(r["peak_holders"] or 0) for r in rs)
        a["errors"] = sum(int(r["errors"]) for r in rs)
        a["rounds"] = len(rs)
        out[s] = a
    ideal = LIMIT / HOLD_S
    print(
        f"\n{plan.callers} callers, max {LIMIT}, {HOLD_S * 1000:.0f} ms holds, {plan.seconds} s x "
        f"{plan.rounds} rounds (ideal {ideal:.0f} grants/s); medians:"
    )
    print("| subject | pairs/s | of ideal | p99 wait (ms) | attempts per grant | peak holders |")
    print("|---|---:|---:|---:|---:|---:|")
    for s, a in out.items():
        print(
            f"| {s} | {a['pairs_per_s']:.0f} | {a['pairs_per_s'] / ideal:.0%} | "
            f"{a['p99_wait_ms']:.0f} | {a['attempts_per_grant']:.2f} | {a['peak_holders']} |"
        )
    return {
        "callers": plan.callers,
        "seconds": plan.seconds,
        "rounds": plan.rounds,
        "limit": LIMIT,
        "hold_ms": HOLD_S * 1000,
        "ideal_per_s": ideal,
        "wait_s": WAIT_S,
        "peer_retry_ms": PEER_RETRY_MS,
        "subjects": out,
        "skipped": skipped,
    }
