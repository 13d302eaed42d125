"""Demo load for `docker compose up`: acquires and releases leases over guard's HTTP API.

Standard library only, so it runs in a plain python image. It drives every panel of the
Grafana dashboard: steady API traffic (grants), `ingest` held near its cap of 40 (function
throttles), `report-gen` above its shadow cap (shadow throttles), quiet spells between busy
minutes, and a few leases it abandons on purpose so they expire (the leak signal).

Environment: GUARD_URL (default http://guard:8000), GUARD_TOKEN (a client-scope token) or
GUARD_TOKEN_FILE (a file holding one, what docker-compose.yml mounts),
GUARD_NAMESPACE (default "default"), LOADGEN_WORKERS (threads, default 64),
LOADGEN_HEARTBEAT (file touched on every loop, for the container healthcheck),
LOADGEN_SECONDS (stop after this long, print a summary and exit 0 only when leases were
granted and every reply was one the lease API documents; default 0 = run forever).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

URL = os.environ.get("GUARD_URL", "http://guard:8000").rstrip("/")
TOKEN_FILE = os.environ.get("GUARD_TOKEN_FILE")
TOKEN = os.environ.get("GUARD_TOKEN") or (
    Path(TOKEN_FILE).read_text().strip() if TOKEN_FILE else ""
)
NAMESPACE = os.environ.get("GUARD_NAMESPACE", "default")
WORKERS = int(os.environ.get("LOADGEN_WORKERS", "64"))
HEARTBEAT = Path(os.environ.get("LOADGEN_HEARTBEAT", "/tmp/loadgen.alive"))
SECONDS = float(os.environ.get("LOADGEN_SECONDS", "0"))
LEASES = f"{URL}/v1/namespaces/{NAMESPACE}/leases"

# function -> (weight, mean seconds held, ttl seconds)
WORKLOAD: dict[str, tuple[int, float, float]] = {
    "login": (6, 0.2, 10),
    "checkout": (4, 0.5, 10),
    "ingest": (5, 8.0, 30),  # ~40 held at once: brushes its cap of 40
    "transform": (3, 4.0, 30),
    "report-gen": (2, 6.0, 30),  # ~11 held against a shadow cap of 5
    "send-email": (2, 0.3, 10),
}
ABANDON_RATE = 0.01  # share of leases never released, so they expire

# outcome -> count: granted (201), throttled (429), released (204), not_held (404 on
# release: the lease had expired), abandoned, unexpected (any other reply or an error)
STATS: dict[str, int] = dict.fromkeys(
    ("granted", "throttled", "released", "not_held", "abandoned", "unexpected"), 0
)
_stats_lock = threading.Lock()
STOP = threading.Event()  # set at the end of a bounded run: sleeps end, held leases are released


def count(outcome: str) -> None:
    with _stats_lock:
        STATS[outcome] += 1


def call(method: str, url: str, body: dict[str, object] | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if TOKEN:
        req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        payload.setdefault("_retry_after", exc.headers.get("Retry-After"))
        return exc.code, payload


def one_invocation(rng: random.Random) -> None:
    names = list(WORKLOAD)
    function = rng.choices(names, weights=[WORKLOAD[n][0] for n in names])[0]
    _, hold, ttl = WORKLOAD[function]
    status, lease = call(
        "POST",
        LEASES,
        {"function": function, "ttl_seconds": ttl, "lease_id": secrets.token_hex(16)},
    )
    if status == 429:
        count("throttled")
        retry_after = float(lease.get("retry_after") or lease.get("_retry_after") or 1.0)
        STOP.wait(min(retry_after, 5.0) * rng.uniform(0.5, 1.5))
        return
    if status != 201 or not lease.get("lease_id"):
        count("unexpected")
        print(f"loadgen: acquire {function}: HTTP {status} {lease}", flush=True)
        STOP.wait(2.0)
        return
    count("granted")
    STOP.wait(rng.expovariate(1.0 / hold))
    if rng.random() < ABANDON_RATE:
        count("abandoned")
        return  # a "crashed" invocation: the lease expires after its TTL
    status, reply = call("DELETE", f"{LEASES}/{lease['lease_id']}")
    if status == 204:
        count("released")
    elif status == 404:  # held past its TTL: it expired (type lease-not-held)
        count("not_held")
    else:
        count("unexpected")
        print(f"loadgen: release {function}: HTTP {status} {reply}", flush=True)


def worker(seed: int) -> None:
    rng = random.Random(seed)
    while not STOP.is_set():
        HEARTBEAT.touch()
        try:
            one_invocation(rng)
        except (OSError, ValueError, KeyError) as exc:  # guard restarting, bad reply
            count("unexpected")
            print(f"loadgen: {type(exc).__name__}: {exc}", flush=True)
            STOP.wait(2.0)
        # bursty arrivals: quiet spells between busy minutes
        busy = (time.time() // 60) % 3 != 2
        STOP.wait(rng.uniform(0.0, 0.2 if busy else 2.0))


def main() -> int:
    print(f"loadgen: {WORKERS} workers against {LEASES}", flush=True)
    threads = [
        threading.Thread(target=worker, args=(i,), daemon=True, name=f"loadgen-{i}")
        for i in range(WORKERS)
    ]
    for t in threads:
        t.start()
    if SECONDS <= 0:
        for t in threads:
            t.join()
    STOP.wait(SECONDS)
    STOP.set()
    for t in threads:  # each finishes its request and releases what it holds
        t.join(15)
    summary = " ".join(f"{k}={v}" for k, v in STATS.items())
    print(f"loadgen: {summary}", flush=True)
    return 0 if STATS["granted"] > 0 and STATS["unexpected"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
