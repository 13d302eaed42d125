"""Worker for test_contention: hammers acquire/release and counts holders *outside* the SDK.

After a grant it INCRs a plain counter per level it holds (on its own connection) and keeps
the largest value INCR returned; it DECRs before releasing. The counted holders are therefore
always a subset of the real lease holders, so a counted maximum above a limit proves an
over-admission."""

from __future__ import annotations

import random
import threading
import time

import redis

import guard

FUNCTIONS = ["ingest", "transform", "login", "adhoc"]
LEVELS = {
    "ingest": ["f:ingest", "g:etl", "a"],
    "transform": ["f:transform", "g:etl", "a"],
    "login": ["f:login", "g:api", "a"],
    "adhoc": ["f:adhoc", "a"],
}


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
            fn = rnd.choice(FUNCTIONS)
            try:
                lease = g.acquire(fn, ttl=30)
            except guard.Throttled:
                throttled += 1
                continue
            granted += 1
            keys = [f"holders:{{{ns}}}:{lvl}" for lvl in LEVELS[fn]]
            pipe = side.pipeline(transaction=False)
            for k in keys:
                pipe.incr(k)
            for lvl, n in zip(LEVELS[fn], pipe.execute(), strict=True):
                local[lvl] = max(local.get(lvl, 0), int(n))
            time.sleep(rnd.random() * 0.002)
            pipe = side.pipeline(transaction=False)
            for k in keys:
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
