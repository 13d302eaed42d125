"""The Node SDK's rows of `make bench`, alone (~2 minutes): guard's Node SDK beside
redis-semaphore (one shared connection, and one process per caller) and the Python SDK —
pairs/s and Redis CPU per pair, uncontended and contended — and cold start against the Python
SDK. Prints a table; writes no docs.

    make node-build && npm ci --prefix bench
    .venv/bin/python bench/node_sdk.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys

import cold_start
import harness
import run_all
from harness import Result
from subjects import GUARD_SDK, NODE_SUBJECTS, node_sdk_subjects


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=10)
    opts = ap.parse_args(argv)
    if not harness.node_modules_ready() or not node_sdk_subjects():
        print("needs `npm ci --prefix bench` and `make node-build`", file=sys.stderr)
        return 2
    plan = run_all.QUICK
    peers = [s for s in NODE_SUBJECTS + node_sdk_subjects() if s.mode in ("shared", "procs")]
    peers = [s for s in peers if s.name != "bottleneck"]
    cfgs: list[run_all.Config] = []
    py = "guard SDK [processes]"
    for w in plan.workers:
        cfgs.append(run_all.Config(py, GUARD_SDK, "processes", w, "uncontended"))
        for s in peers:
            if s.mode == "procs" and w == 1:
                continue
            cfgs.append(run_all.Config(f"{s.name} [{s.mode}]", s, s.mode, w, "uncontended"))
    w = plan.contended_workers
    cfgs.append(run_all.Config(py, GUARD_SDK, "processes", w, "contended"))
    cfgs += [run_all.Config(f"{s.name} [{s.mode}]", s, s.mode, w, "contended") for s in peers]
    results: dict[int, list[Result]] = {i: [] for i in range(len(cfgs))}
    with harness.redis_server() as server:
        for rnd in range(opts.rounds):
            order = list(range(len(cfgs)))
            shift = rnd * len(order) // opts.rounds
            for i in order[shift:] + order[:shift]:
                results[i].append(run_all.measure(server, plan, cfgs[i]))
        cold = cold_start.measure(server.url, opts.cold_runs)
    print(f"\n{opts.rounds} rounds, medians; Redis CPU = main-thread CPU per acquire+release pair")
    print(f"{'subject [mode]':32} {'workload':11} {'w':>3} {'pairs/s':>9} {'CPU us/pair':>11} "
          f"{'p50 us':>8} {'max holders':>11}")  # fmt: skip
    for i, c in enumerate(cfgs):
        a = run_all.aggregate(results[i], c.subject.top_level)
        mh = "" if a["max_holders"] is None else str(a["max_holders"])
        print(f"{c.label:32} {c.workload:11} {c.workers:>3} {a['pairs_per_s']:9.0f} "
              f"{a['cpu_us']:11.1f} {a['p50_us']:8.0f} {mh:>11}")  # fmt: skip
    print("\ncold start (spawn -> first granted acquire):")
    print(json.dumps(cold, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
