"""Worker for test_keys_contention: hammers keyed acquire/release and counts holders per key
*outside* the SDK, as contention_worker does per level: after a grant it INCRs a plain
counter for each level and key it holds (on its own connection) and keeps the largest value
INCR returned; it DECRs before releasing. A counted maximum above a cap proves an
over-admission."""

from __future__ import annotations

import random
import threading
import time

import redis

import guard

FUNCTIONS = ["api", "batch"]
KEYS = ["a", "b", "c", "big"]


def levels(fn: str, key: str) -> list[str]:
    if fn == "api":
        return ["f:api", f"k:api|{key}", f"kg:tenants|{key}"]
    return ["f:batch", f"kg:tenants|{key}"]


def hammer(url: str, ns: str, threads: int, iterations: int, seconds: float) -> dict[str, int]:
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
            fn, key = rnd.choice(FUNCTIONS), rnd.choice(KEYS)
            try:
                lease = g.acquire(fn, ttl=30, key=key)
            except guard.Throttled:
                throttled += 1
                continue
            granted += 1
            lv = levels(fn, key)
            ks = [f"holders:{{{ns}}}:{x}" for x in lv]
            pipe = side.pipeline(transaction=False)
            for k in ks:
                pipe.incr(k)
            for name, n in zip(lv, pipe.execute(), strict=True):
                local[name] = max(local.get(name, 0), int(n))
            time.sleep(rnd.random() * 0.003)
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
