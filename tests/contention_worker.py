"""Worker for the contention tests: hammers acquire/release and counts holders *outside* the SDK.

After a grant it INCRs a plain counter per level it holds (on its own connection) and keeps
the largest value INCR returned; it DECRs before releasing. The counted holders are therefore
always a subset of the real lease holders, so a counted maximum above a limit proves an
over-admission.

A workload (by name, so it crosses a spawn) says which functions and keys are acquired and
which counted levels a grant holds: `levels` (test_contention: four functions over three
levels, no key), `keyed` (test_keys_contention: two functions, four keys, per-key caps at the
function and in a group) and `cross-keys` (clients/node/test/cross_runtime.test.mjs: one
function, three keys, beside Node callers)."""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

import guard

FUNCTIONS = ["ingest", "transform", "login", "adhoc"]
LEVELS = {
    "ingest": ["f:ingest", "g:etl", "a"],
    "transform": ["f:transform", "g:etl", "a"],
    "login": ["f:login", "g:api", "a"],
    "adhoc": ["f:adhoc", "a"],
}
KEYS = ["a", "b", "c", "big"]  # the `keyed` workload's keys
CROSS_KEYS = ["acme", "globex", "initech"]  # the `cross-keys` workload's keys


def keyed_levels(fn: str, key: str | None) -> list[str]:
    if fn == "api":
        return ["f:api", f"k:api|{key}", f"kg:tenants|{key}"]
    return ["f:batch", f"kg:tenants|{key}"]


@dataclass(frozen=True)
class Workload:
    functions: list[str]
    keys: list[str] | None  # None: acquire with no key
    levels: Callable[[str, str | None], list[str]]  # the counted levels a grant holds
    hold: float  # a grant is held for up to this many seconds
    pause: float = 0.0  # sleep after a refusal


WORKLOADS = {
    "levels": Workload(FUNCTIONS, None, lambda fn, _key: LEVELS[fn], hold=0.002),
    "keyed": Workload(["api", "batch"], KEYS, keyed_levels, hold=0.003),
    "cross-keys": Workload(
        ["keyed"], CROSS_KEYS, lambda _fn, key: [f"k:{key}", "total"], hold=0.002, pause=0.0005
    ),
}


def hammer(
    url: str, ns: str, threads: int, iterations: int, seconds: float, workload: str = "levels"
) -> dict[str, int]:
    """`threads` callers, each up to `iterations` decisions or `seconds`: the largest counted
    holders per level (`max:<level>`) and the grants and refusals."""
    w = WORKLOADS[workload]
    best: dict[str, int] = {}
    counts = {"granted": 0, "throttled": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(seed: int) -> None:
        rnd = random.Random(seed)
        g = guard.Guard.from_url(url, namespace=ns, timeout=5)
        side = redis.Redis.from_url(url)
        local: dict[str, int] = {}
        granted = throttled = 0
        for _ in range(iterations):
            if time.monotonic() > deadline:
                break
            fn = rnd.choice(w.functions)
            key = rnd.choice(w.keys) if w.keys else None
            try:
                lease = g.acquire(fn, ttl=30, key=key)
            except guard.Throttled:
                throttled += 1
                if w.pause:
                    time.sleep(w.pause)
                continue
            granted += 1
            lv = w.levels(fn, key)
            ks = [f"holders:{{{ns}}}:{x}" for x in lv]
            pipe = side.pipeline(transaction=False)
            for k in ks:
                pipe.incr(k)
            for name, n in zip(lv, pipe.execute(), strict=True):
                local[name] = max(local.get(name, 0), int(n))
            time.sleep(rnd.random() * w.hold)
            pipe = side.pipeline(transaction=False)
            for k in ks:
                pipe.decr(k)
            pipe.execute()
            lease.release()
        with lock:
            for k, v in local.items():
                best[k] = max(best.get(k, 0), v)
            counts["granted"] += granted
            counts["throttled"] += throttled
        g.close()
        side.close()

    ts = [threading.Thread(target=run, args=(i + id(best),)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {**{f"max:{k}": v for k, v in best.items()}, **counts}


def hammer_processes(
    url: str, ns: str, workload: str, processes: int = 3, threads: int = 4
) -> tuple[dict[str, int], int, int]:
    """`processes` spawned processes x `threads` run `hammer` (400 decisions each, at most 20 s):
    the largest counted holders per level over all of them, the grants and the refusals."""
    with mp.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(hammer, [(url, ns, threads, 400, 20.0, workload)] * processes)
    seen: dict[str, int] = {}
    granted = throttled = 0
    for r in results:
        granted += r.pop("granted")
        throttled += r.pop("throttled")
        for k, v in r.items():
            seen[k[4:]] = max(seen.get(k[4:], 0), v)
    return seen, granted, throttled
