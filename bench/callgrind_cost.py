"""Redis server cost per acquire+release pair, counted in instructions (callgrind).

Wall-clock and INFO cpu figures move with whatever else the machine runs; instruction
counts do not. Each subject gets its own redis-server under `valgrind --tool=callgrind`
with collection off; setup and warm-up run, collection is switched on for exactly N pairs
(callgrind_control -i on/off), and the server's instruction total is divided by N.

    .venv/bin/python bench/callgrind_cost.py [--pairs 2000]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import redis

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bench_engine import Reference
from harness import free_port

import guard
from guard.server.embedded import private_redis_args


def start(tmp: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    out = os.path.join(tmp, "callgrind.out.%p")
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            "redis-server",
            *private_redis_args(port, tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    c = redis.Redis(port=port)
    for _ in range(600):
        try:
            c.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server under valgrind did not start")


def collect(pid: int, on: bool) -> None:
    """Switch callgrind's instruction collection on or off in the server `pid`."""
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def instructions(tmp: str) -> int:
    """The server's instruction total from the callgrind output files in `tmp`."""
    total = 0
    for f in glob.glob(os.path.join(tmp, "callgrind.out.*")):
        with open(f) as fh:
            for line in fh:
                m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
                if m:
                    total = max(total, int(m.group(1)))
    return total


def measure(subject: str, pairs: int, keep: str | None = None) -> float:
    """Redis instructions per acquire+release pair of `subject` ("guard" or "reference")."""
    with tempfile.TemporaryDirectory() as tmp0:
        tmp = keep or tmp0
        proc, port = start(tmp)
        try:
            pair: Callable[[], None]
            if subject == "guard":
                g = guard.Guard.from_url(f"redis://127.0.0.1:{port}/0", namespace="b", timeout=30)
                g.admin.set_namespace(max_concurrency=1000)
                g.admin.put_group("etl", max_concurrency=500, members=["ingest"])
                g.admin.put_group("api", reserved=100, members=["login"])
                g.admin.put_function("ingest", max_concurrency=400)

                def pair() -> None:
                    g.acquire("ingest", ttl=30).release()
            elif subject == "reference":
                pair = Reference(redis.Redis(port=port, socket_timeout=30)).pair
            else:
                raise ValueError(f"unknown subject {subject!r} (guard, reference)")
            for _ in range(200):
                pair()
            collect(proc.pid, True)
            for _ in range(pairs):
                pair()
            collect(proc.pid, False)
        finally:
            proc.terminate()
            proc.wait(60)
        return instructions(tmp) / pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument(
        "--subjects",
        default="guard,reference",
        help="comma-separated: guard, reference (keyed and rate-limited decisions: "
        "bench/callgrind_keyed.py)",
    )
    a = ap.parse_args()
    res = {s: measure(s, a.pairs) for s in a.subjects.split(",")}
    if "guard" in res and "reference" in res:
        res["ratio"] = res["guard"] / res["reference"]
    print(json.dumps({"instructions_per_pair": res, "pairs": a.pairs}, indent=2))


if __name__ == "__main__":
    main()
