"""Issue 2 benchmark: guard's acquire+release pair beside a bare one-level redis-py semaphore.

Side by side in one run, on a private redis-server (never the machine's shared one):
  * pair time at C=1: median over interleaved rounds (guard round, reference round, ...);
  * Redis main-thread CPU per pair (INFO cpu: used_cpu_user_main_thread + sys);
  * command time per pair (INFO commandstats, sum of usec over all commands);
  * round trips per pair (INFO stats total_reads_processed);
  * `import guard` cost once `redis` is imported (fresh interpreters, median);
  * with --callgrind, Redis instructions per pair (bench/callgrind_cost.py), which unlike
    the timings do not move with the load of a shared machine.

    .venv/bin/python bench/bench_engine.py [--pairs 20000] [--rounds 15] [--callgrind]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness import redis_server
from reference import ReferenceSemaphore

import guard


class Reference:
    """The bare one-level semaphore of bench/reference.py: one Lua acquire + a plain ZREM."""

    def __init__(self, client: redis.Redis, limit: int = 1000) -> None:
        self.sem = ReferenceSemaphore(client, "ref:{sem}", limit)

    def pair(self) -> None:
        lid = os.urandom(16).hex()
        if not self.sem.acquire(lid, 30.0):
            raise RuntimeError("reference refused")
        self.sem.release(lid)


TOP_LEVEL = {"guard": ("cmdstat_evalsha",), "reference": ("cmdstat_evalsha", "cmdstat_zrem")}


def server_cost(
    c: redis.Redis, run: Callable[[], None], n: int, top_level: tuple[str, ...]
) -> dict[str, float]:
    """Redis-side cost of `n` pairs. Command time counts only the commands the client sent
    (commandstats also lists the commands a script calls, inside the script's own time)."""

    def snap() -> tuple[float, float, int]:
        cpu = c.info("cpu")
        stats = c.info("commandstats")
        reads = c.info("stats")["total_reads_processed"]
        usec = sum(stats[k]["usec"] for k in top_level if k in stats)
        return cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"], usec, reads

    c.config_resetstat()
    cpu0, us0, rd0 = snap()
    for _ in range(n):
        run()
    cpu1, us1, rd1 = snap()
    # Each INFO call is itself one read; snap() makes 3 of them.
    return {
        "cpu_us_per_pair": (cpu1 - cpu0) * 1e6 / n,
        "cmd_us_per_pair": (us1 - us0) / n,
        "reads_per_pair": (rd1 - rd0 - 3) / n,
    }


def pair_times(
    subjects: dict[str, Callable[[], None]], rounds: int, per_round: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(rounds):
        for name, run in subjects.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                run()
            samples[name].append((time.perf_counter() - t0) / per_round * 1e6)
    return {k: statistics.median(v) for k, v in samples.items()}


def import_cost(runs: int = 15) -> dict[str, Any]:
    code = (
        "import time, sys, redis; t=time.perf_counter(); import guard; "
        "d=time.perf_counter()-t; print(d*1000, 'flask' in sys.modules, 'boto3' in sys.modules)"
    )
    vals, heavy = [], False
    for _ in range(runs):
        out = subprocess.check_output([sys.executable, "-c", code], text=True).split()
        vals.append(float(out[0]))
        heavy = heavy or out[1] == "True" or out[2] == "True"
    return {"import_ms_median": statistics.median(vals), "flask_or_boto3_imported": heavy}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions")
    a = ap.parse_args()
    with redis_server() as srv:  # a private redis-server (bench/harness.py)
        url = srv.url
        c = srv.client()
        ref = Reference(srv.client())
        g = guard.Guard.from_url(url, namespace="bench", timeout=1.0)
        # Three levels on every admission, and a reserving group elsewhere (S2 path).
        g.admin.set_namespace(max_concurrency=1000)
        g.admin.put_group("etl", max_concurrency=500, members=["ingest"])
        g.admin.put_group("api", reserved=100, members=["login"])
        g.admin.put_function("ingest", max_concurrency=400)

        def guard_pair() -> None:
            g.acquire("ingest", ttl=30).release()

        subjects = {"guard": guard_pair, "reference": ref.pair}
        for run in subjects.values():  # warm up: scripts loaded, connections open
            for _ in range(500):
                run()
        cost = {k: server_cost(c, run, a.pairs, TOP_LEVEL[k]) for k, run in subjects.items()}
        times = pair_times(subjects, a.rounds, max(200, a.pairs // a.rounds))
        imp = import_cost()
    res = {
        "redis_version": subprocess.check_output(["redis-server", "--version"], text=True)
        .split()[2]
        .removeprefix("v="),
        "pair_us_c1": times,
        "server": cost,
        "ratios": {
            "pair_time": times["guard"] / times["reference"],
            "redis_cpu": cost["guard"]["cpu_us_per_pair"] / cost["reference"]["cpu_us_per_pair"],
            "cmd_time": cost["guard"]["cmd_us_per_pair"] / cost["reference"]["cmd_us_per_pair"],
        },
        **imp,
    }
    if a.callgrind:
        from callgrind_cost import measure

        ins = {k: measure(k, 2000) for k in ("guard", "reference")}
        res["instructions_per_pair"] = {**ins, "ratio": ins["guard"] / ins["reference"]}
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
