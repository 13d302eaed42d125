"""HTTP acquire+release pairs/s and latency vs the SDK's direct Redis path, same run.

Load generator: Python threads, each with its own keep-alive `guard.http_backend.HttpBackend`
(HTTP) or sharing one `guard.Guard` on redis-py's pool (direct). A private redis-server and a
`guard serve --workers N` on free loopback ports; nothing else is touched.

    .venv/bin/python bench/bench_http.py [--seconds 5] [--workers 2] [--clients 1,16,64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from live import CLIENT_TOKEN, LiveServer
from redis_proc import RedisProcess

import guard
from guard.http_backend import HttpBackend


def run(make: object, clients: int, seconds: float) -> tuple[float, float, float]:
    lat: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        g = make()  # type: ignore[operator]
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            g.acquire("bench", ttl=30).release()
            lat[i].append(time.perf_counter() - t0)
        g.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    all_lat = sorted(x for xs in lat for x in xs)
    p99 = all_lat[int(len(all_lat) * 0.99) - 1]
    return len(all_lat) / elapsed, statistics.median(all_lat) * 1000, p99 * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", default="1,16,64")
    args = ap.parse_args()
    redis = RedisProcess().start()
    server = LiveServer(redis.url, workers=args.workers).start()
    shared = guard.Guard.from_url(redis.url, namespace="bench", timeout=5.0)
    shared.admin.set_namespace(max_concurrency=None)  # HTTP leases need a configured namespace
    try:
        print(f"guard serve --workers {args.workers} (gevent); {os.cpu_count()} CPUs")
        print("| path | clients | pairs/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|")
        for n in (int(c) for c in args.clients.split(",")):

            def http() -> guard.Guard:
                return guard.Guard(HttpBackend(server.url, CLIENT_TOKEN, 30.0), namespace="bench")

            for name, make in (("HTTP", http), ("direct Redis", lambda: _NoClose(shared))):
                rate, p50, p99 = run(make, n, args.seconds)
                print(f"| {name} | {n} | {rate:,.0f} | {p50:.2f} | {p99:.2f} |", flush=True)
    finally:
        shared.close()
        server.stop()
        redis.cleanup()


class _NoClose:
    """The direct path shares one Guard (one connection pool) across threads, as an app would."""

    def __init__(self, g: guard.Guard) -> None:
        self.g = g

    def acquire(self, *a: object, **kw: object) -> guard.Lease:
        return self.g.acquire(*a, **kw)  # type: ignore[arg-type]

    def close(self) -> None:
        pass


if __name__ == "__main__":
    main()
