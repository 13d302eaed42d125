"""Run every workload over every subject on one private redis-server; write docs/benchmarks.md.

    python bench/run_all.py --quick     # ~2-3 minutes
    python bench/run_all.py             # full: longer runs, more rounds (~10-15 minutes on 2 cores)
    python bench/run_all.py --waiting   # only the contended waiting workload (bench/waiting.py;
                                        # the full run and --quick include it)

Measurements are interleaved: each round runs every configuration once (starting at a
different one each round), and the tables quote the median over rounds, so machine noise
hits every subject alike. Raw results go to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import cold_start
import harness
import redis
import scaling
import waiting
from harness import BenchConfig, NodeSubject, PySubject, Result, median
from reference import ReferenceSemaphore
from subjects import (
    HTTP_ADMIN_TOKEN,
    HTTP_CLIENT_TOKEN,
    NODE_SUBJECTS,
    PY_SUBJECTS,
    guard_subjects,
    http_available,
    keyed_rate_subjects,
    node_sdk_subjects,
)

ROOT = os.path.dirname(harness.BENCH_DIR)
DOCS = os.path.join(ROOT, "docs")
IMG = os.path.join(DOCS, "img")
OUT = os.path.join(harness.BENCH_DIR, "out")
UNLIMITED = 1_000_000  # uncontended: a limit no run reaches


@dataclass(frozen=True)
class Plan:
    seconds: float
    contended_seconds: float
    rounds: int
    workers: tuple[int, ...]
    contended_workers: int
    contended_limit: int
    hold_ms: float
    retry_ms: float
    held_sizes: tuple[int, ...]
    held_pairs: int
    ceiling_requests: int
    cluster_namespaces: tuple[int, ...] = (1, 3, 12)
    cluster_procs: int = 6
    cluster_seconds: float = 2.0
    callgrind_pairs: int = 2000
    http_workers: int = 2  # gunicorn workers of guard serve
    http_threads: int = 40  # gthread threads per worker: >= kept-alive connections / workers
    cold_start_runs: int = 10  # fresh processes per SDK (bench/cold_start.py)
    shared_threads: int = 256  # guard SDK [shared]: threads of one process on one Guard
    keyed_workers: tuple[int, ...] = (1, 16)  # "keyed + rate limited decision" callers


QUICK = Plan(
    1.0,
    2.0,
    3,
    (1, 16, 64),
    64,
    10,
    1.0,
    1.0,
    (10, 100, 1000, 10_000, 100_000),
    2000,
    50_000,
    cluster_seconds=1.0,
    callgrind_pairs=500,
)
FULL = Plan(
    1.5,
    3.0,
    5,
    (1, 16, 64),
    64,
    10,
    1.0,
    1.0,
    (10, 100, 1000, 10_000, 100_000),
    5000,
    100_000,
    cluster_seconds=3.0,
)


@dataclass(frozen=True)
class Config:
    """One measured configuration: a subject, a mode, a worker count and a workload."""

    label: str  # subject name + mode, the row label
    subject: PySubject | NodeSubject
    mode: str
    workers: int
    workload: str


def configs(plan: Plan, http_base: str | None = None) -> list[Config]:
    subjects = PY_SUBJECTS + guard_subjects(http_base)
    out: list[Config] = []
    for subj, kinds in subjects:
        for kind in kinds:
            for w in plan.workers:
                if kind == "threads" and w == 1:
                    continue  # one thread is the one-process run
                out.append(Config(f"{subj.name} [{kind}]", subj, kind, w, "uncontended"))
    node_subjects = NODE_SUBJECTS + node_sdk_subjects()
    if harness.node_modules_ready():
        for ns in node_subjects:
            for w in plan.workers:
                if ns.mode != "shared" and w == 1:
                    continue  # one caller: the same as shared
                out.append(Config(f"{ns.name} [{ns.mode}]", ns, ns.mode, w, "uncontended"))
    for subj, _kinds in subjects:
        if subj.name == "guard SDK":  # one process, many threads, one Guard (issue 17)
            out.append(
                Config(f"{subj.name} [shared]", subj, "shared", plan.shared_threads, "uncontended")
            )
    w = plan.contended_workers
    for subj, kinds in subjects:
        out.append(Config(f"{subj.name} [{kinds[0]}]", subj, kinds[0], w, "contended"))
    if harness.node_modules_ready():
        for ns in node_subjects:
            if ns.mode in ("shared", "procs"):
                out.append(Config(f"{ns.name} [{ns.mode}]", ns, ns.mode, w, "contended"))
    out += keyed_configs(plan)
    return out


def keyed_configs(plan: Plan) -> list[Config]:
    """The "keyed + rate limited decision" row (workload "keyed": uncontended decisions with a
    key): guard's Node SDK with a key and rates, without, and rate-limiter-flexible."""
    if not harness.node_modules_ready():
        return []
    out: list[Config] = []
    for ks in keyed_rate_subjects():
        for w in plan.keyed_workers:
            if ks.mode == "procs" and w == 1:
                continue  # one caller: the same as shared
            out.append(Config(f"{ks.name} [{ks.mode}]", ks, ks.mode, w, "keyed"))
    return out


def measure(server: harness.RedisServer, plan: Plan, c: Config) -> Result:
    contended = c.workload == "contended"
    limit = plan.contended_limit if contended else UNLIMITED
    cfg = BenchConfig(url=server.url, key=f"bench-{uuid.uuid4().hex[:12]}", limit=limit)
    seconds = plan.contended_seconds if contended else plan.seconds
    hold = plan.hold_ms if contended else 0.0
    if isinstance(c.subject, NodeSubject):
        if c.subject.setup is not None:
            c.subject.setup(cfg)
        return harness.run_node(
            c.subject, cfg, server.port, c.workers, seconds, c.workload, hold, plan.retry_ms
        )
    return harness.run_python(
        c.subject, cfg, c.workers, seconds, c.mode, c.workload, hold, plan.retry_ms
    )


def held_scaling(server: harness.RedisServer, plan: Plan) -> list[dict[str, Any]]:
    """Reference only: cost of one admission with N leases already held, and bytes per lease."""
    client = server.client()
    rows: list[dict[str, Any]] = []
    try:
        for n in plan.held_sizes:
            key = f"bench:held:{uuid.uuid4().hex[:12]}"
            sem = ReferenceSemaphore(client, key, limit=n + 10)
            sem.acquire("warm", 1.0)  # loads the script, creates nothing that lasts
            sem.release("warm")
            mem0 = harness.info_snapshot(client).used_memory
            for start in range(0, n, 1000):
                pipe = client.pipeline(transaction=False)
                for i in range(start, min(n, start + 1000)):
                    sem.acquire_in(pipe, f"held-{i:06d}-{uuid.uuid4().hex[:16]}", 3600.0)
                pipe.execute()
            mem1 = harness.info_snapshot(client).used_memory
            held = int(client.zcard(key))
            costs, p50s = [], []
            for _ in range(plan.rounds):
                lat: list[float] = []

                def pair(lat: list[float] = lat, sem: ReferenceSemaphore = sem) -> None:
                    t0 = time.perf_counter_ns()
                    lid = uuid.uuid4().hex
                    if not sem.acquire(lid, 30.0):
                        raise RuntimeError("held-lease run refused a grant")
                    sem.release(lid)
                    lat.append((time.perf_counter_ns() - t0) / 1000)

                costs.append(harness.redis_cost(client, pair, plan.held_pairs))
                p50s.append(harness.percentile(sorted(lat), 0.5))
            rows.append(
                {
                    "held": held,
                    "cpu_us": median([c.cpu_us for c in costs]),
                    "cmd_us": median([c.cmd_us for c in costs]),
                    "script_us": median([c.script_us for c in costs]),
                    "p50_us": median(p50s),
                    "bytes_per_lease": (mem1 - mem0) / held if held else float("nan"),
                    "pairs": plan.held_pairs,
                }
            )
            client.delete(key)
    finally:
        client.close()
    return rows


def versions() -> dict[str, str]:
    def cmd(args: list[str]) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "unavailable"

    v = {
        "redis-server": cmd(["redis-server", "--version"]),
        "node": cmd(["node", "--version"]),
        "python": platform.python_version(),
        "redis-py": redis.__version__,
    }
    for dist in ("guard", "matplotlib", "gunicorn", "flask"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            v[dist] = importlib.metadata.version(dist)
    for pkg in ("redis-semaphore", "ioredis", "bottleneck", "rate-limiter-flexible"):
        path = os.path.join(harness.BENCH_DIR, "node_modules", pkg, "package.json")
        if os.path.exists(path):
            with open(path) as f:
                v[pkg] = json.load(f)["version"]
    return v


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": str(os.cpu_count()), "cpu": model, "kernel": platform.release()}


def aggregate(results: list[Result], top_level: tuple[str, ...]) -> dict[str, Any]:
    """Medians over rounds; max_holders is the maximum over rounds (the worst seen).

    ``top_us`` is the command time of the commands the client itself sent (``top_level`` plus
    the contended workload's INCRBY/DECRBY): commandstats lists script-inner commands too."""
    costs = [r.cost for r in results if r.cost]
    holders = [r.max_holders for r in results if r.max_holders is not None]
    return {
        "rounds": len(results),
        "pairs_per_s": median([r.pairs_per_s for r in results]),
        "pairs_per_s_min": min(r.pairs_per_s for r in results),
        "pairs_per_s_max": max(r.pairs_per_s for r in results),
        "p50_us": median([r.p50_us for r in results]),
        "p99_us": median([r.p99_us for r in results]),
        "refused": sum(r.refused for r in results),
        "attempts_per_pair": median([r.attempts_per_pair or float("nan") for r in results]),
        "max_holders": max(holders) if holders else None,
        "cpu_us": median([c.cpu_us for c in costs]) if costs else float("nan"),
        "cmd_us": median([c.cmd_us for c in costs]) if costs else float("nan"),
        "script_us": median([c.script_us for c in costs]) if costs else float("nan"),
        "top_us": median([c.top_level_us((*top_level, "incrby", "decrby")) for c in costs])
        if costs
        else float("nan"),
        "reads": median([c.reads for c in costs]) if costs else float("nan"),
        "calls": costs[len(costs) // 2].calls if costs else {},
        "connections": results[0].extra.get("connections"),
    }


def is_many_callers(c: Config) -> bool:
    """The pair compared in "Many callers in one process": 1 x 256 threads vs 16 processes."""
    return c.workload == "uncontended" and (
        c.label == "guard SDK [shared]" or (c.label == "guard SDK [processes]" and c.workers == 16)
    )


def many_callers(plan: Plan) -> int:
    """Just the many-callers rows, interleaved over the plan's rounds; prints medians."""
    with harness.redis_server() as server:
        cs = [c for c in configs(plan) if is_many_callers(c)]
        got: dict[str, list[Result]] = {c.label: [] for c in cs}
        for rnd in range(plan.rounds):
            for c in cs[rnd % len(cs) :] + cs[: rnd % len(cs)]:
                r = measure(server, plan, c)
                got[c.label].append(r)
                print(
                    f"round {rnd + 1}/{plan.rounds} {c.label:24} w={c.workers:<3} "
                    f"{r.pairs_per_s:8.0f} pairs/s p50 {r.p50_us:7.0f}us p99 {r.p99_us:8.0f}us"
                    f" connections {r.extra.get('connections') or c.workers}",
                    flush=True,
                )
    print("\nmedians over rounds:")
    for c in cs:
        a = aggregate(got[c.label], c.subject.top_level)
        print(
            f"{c.label:24} w={c.workers:<3} {a['pairs_per_s']:8.0f} pairs/s "
            f"(min {a['pairs_per_s_min']:.0f}, max {a['pairs_per_s_max']:.0f}) "
            f"p50 {a['p50_us']:7.0f}us p99 {a['p99_us']:8.0f}us "
            f"connections {a['connections'] or c.workers}"
        )
    return 0


def keyed_rate(plan: Plan) -> int:
    """Just the "keyed + rate limited decision" row, interleaved over the plan's rounds, on
    one private redis-server; prints medians per decision, writes nothing."""
    cs = keyed_configs(plan)
    if not cs:
        print("needs `npm ci --prefix bench` (and `make node-build` for guard)", file=sys.stderr)
        return 2
    got: dict[int, list[Result]] = {i: [] for i in range(len(cs))}
    with harness.redis_server() as server:
        for rnd in range(plan.rounds):
            order = list(range(len(cs)))
            shift = rnd * len(order) // plan.rounds
            for i in order[shift:] + order[:shift]:
                c = cs[i]
                r = measure(server, plan, c)
                got[i].append(r)
                print(
                    f"round {rnd + 1}/{plan.rounds} {c.label:44} w={c.workers:<3} "
                    f"{r.pairs_per_s:8.0f} decisions/s p50 {r.p50_us:7.0f}us "
                    f"p99 {r.p99_us:8.0f}us",
                    flush=True,
                )
    print(f"\nmedians over {plan.rounds} rounds (a guard decision is an acquire+release pair):")
    print(keyed_header())
    for i, c in enumerate(cs):
        print(keyed_line(c.label, c.workers, aggregate(got[i], c.subject.top_level)))
    import callgrind_keyed

    if callgrind_keyed.available():
        instr = callgrind_keyed.measure_all(plan.callgrind_pairs)
        print(f"\nRedis instructions per decision (callgrind, {plan.callgrind_pairs} serial):")
        for name, v in instr.items():
            print(f"{name:24} {v:12,.0f}")
    return 0


def waiting_violations(waited: dict[str, Any]) -> list[str]:
    """More holders at once than the waiting workload's limit: guard's stops the run, a peer's
    is returned (reported, and the run exits non-zero)."""
    out = []
    for name, a in waited["subjects"].items():
        if a["peak_holders"] > waited["limit"]:
            msg = (
                f"SAFETY VIOLATION: {name} let {a['peak_holders']} holders in at once "
                f"(limit {waited['limit']}) in the waiting workload"
            )
            print("!" * 8, msg, flush=True)
            if name.startswith("guard"):
                raise SystemExit(msg)
            out.append(msg)
    return out


def keyed_header() -> str:
    return (
        f"{'subject [mode]':44} {'w':>3} {'decisions/s':>11} {'p50 us':>7} {'p99 us':>8} "
        f"{'Redis CPU us/dec':>16} {'script us/dec':>13} {'commands/dec':>12}"
    )


def keyed_line(label: str, workers: int, a: dict[str, Any]) -> str:
    calls = sum(a["calls"].values()) if a["calls"] else float("nan")
    return (
        f"{label:44} {workers:>3} {a['pairs_per_s']:11.0f} {a['p50_us']:7.0f} "
        f"{a['p99_us']:8.0f} {a['cpu_us']:16.1f} {a['script_us']:13.1f} {calls:12.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="short runs (~2-3 minutes in all)")
    ap.add_argument("--no-docs", action="store_true", help="print results, write no docs")
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite the docs from bench/out/results.json"
    )
    ap.add_argument(
        "--many-callers",
        action="store_true",
        help="only guard SDK: 1 process x 256 threads on one Guard beside 16 "
        "processes (prints, writes no docs)",
    )
    ap.add_argument(
        "--waiting",
        action="store_true",
        help="only the contended waiting workload (bench/waiting.py): guard wait= beside "
        "guard polling, redis-semaphore and bottleneck (prints, writes no docs)",
    )
    ap.add_argument(
        "--keyed-rate",
        action="store_true",
        help="only the keyed + rate limited decision row: guard's Node SDK with a key and "
        "rates, without, and rate-limiter-flexible (prints, writes no docs)",
    )
    opts = ap.parse_args(argv)
    if opts.waiting:
        waiting.run(waiting.QUICK if opts.quick else waiting.FULL)
        return 0
    if opts.keyed_rate:
        return keyed_rate(QUICK if opts.quick else FULL)
    if opts.many_callers:
        return many_callers(QUICK if opts.quick else FULL)
    if opts.report_only:
        import report as report_mod

        with open(os.path.join(OUT, "results.json")) as f:
            report_mod.write(json.load(f), DOCS, IMG)
        print(f"wrote {os.path.join(DOCS, 'benchmarks.md')}")
        return 0
    plan = QUICK if opts.quick else FULL
    if not harness.node_modules_ready():
        print("bench/node_modules missing: run `npm ci --prefix bench`; Node peers skipped")
    t_start = time.monotonic()
    violations: list[str] = []
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(harness.redis_server())
        http_base = None
        if http_available():
            http = stack.enter_context(
                harness.guard_http_server(
                    server.url,
                    plan.http_workers,
                    plan.http_threads,
                    HTTP_CLIENT_TOKEN,
                    HTTP_ADMIN_TOKEN,
                )
            )
            http_base = http.base
        else:
            print("guard has no HTTP service in this checkout (guard.server): HTTP subject skipped")
        plan_configs = configs(plan, http_base)
        by_config: dict[int, list[Result]] = {i: [] for i in range(len(plan_configs))}
        print(f"redis-server on 127.0.0.1:{server.port}; {len(plan_configs)} configs")
        ceilings: list[dict[str, float]] = []
        for rnd in range(plan.rounds):
            ceilings.append(harness.redis_benchmark_ceiling(server.port, plan.ceiling_requests))
            order = list(range(len(plan_configs)))
            shift = rnd * len(order) // plan.rounds
            for i in order[shift:] + order[:shift]:
                c = plan_configs[i]
                try:
                    r = measure(server, plan, c)
                except RuntimeError as exc:
                    if not isinstance(c.subject, NodeSubject):
                        raise
                    # a Node driver that crashed under load: recorded, the round goes on
                    failures.append(f"round {rnd + 1}: {c.label} w={c.workers}: {exc!s:.300}")
                    print(f"!!! {failures[-1]}", flush=True)
                    continue
                by_config[i].append(r)
                print(
                    f"round {rnd + 1}/{plan.rounds} {c.workload:11} {c.label:34} w={c.workers:<3}"
                    f" {r.pairs_per_s:9.0f} pairs/s p50 {r.p50_us:8.0f}us p99 {r.p99_us:8.0f}us"
                    + (f" max_holders {r.max_holders}" if r.max_holders is not None else ""),
                    flush=True,
                )
                if r.max_holders is not None and r.max_holders > plan.contended_limit:
                    msg = (
                        f"SAFETY VIOLATION: {c.label} let {r.max_holders} holders in at once "
                        f"(limit {plan.contended_limit}) in round {rnd + 1}"
                    )
                    print("!" * 8, msg, flush=True)
                    if c.subject.name.startswith("guard"):
                        raise SystemExit(msg)
                    violations.append(msg)  # a peer's: reported, and the run exits non-zero
        ceiling = {k: median([c[k] for c in ceilings]) for k in ceilings[0]}
        waited = waiting.run(waiting.QUICK if opts.quick else waiting.FULL, server, failures)
        violations += waiting_violations(waited)
        cold = cold_start.measure(server.url, plan.cold_start_runs)
        print(f"cold start (µs to the first acquire): {cold}", flush=True)
        held = [{"subject": "reference (redis-py)", **h} for h in held_scaling(server, plan)]
        held += scaling.guard_held_scaling(server, plan.held_sizes, plan.held_pairs, plan.rounds)
    cluster = scaling.cluster_scaling(
        plan.cluster_namespaces, plan.cluster_procs, plan.cluster_seconds, plan.rounds
    )
    from callgrind_cost import measure as callgrind_measure

    instructions = {s: callgrind_measure(s, plan.callgrind_pairs) for s in ("guard", "reference")}
    print(f"callgrind instructions per pair: {instructions}", flush=True)
    import callgrind_keyed

    keyed_instructions: dict[str, float] = {}
    if callgrind_keyed.available():
        keyed_instructions = callgrind_keyed.measure_all(plan.callgrind_pairs)
        print(f"callgrind instructions per keyed decision: {keyed_instructions}", flush=True)
    rows = []
    for i, c in enumerate(plan_configs):
        if not by_config[i]:
            continue
        rows.append(
            {
                "label": c.label,
                "subject": c.subject.name,
                "mode": c.mode,
                "workers": c.workers,
                "workload": c.workload,
                **aggregate(by_config[i], c.subject.top_level),
            }
        )
    report = {
        "mode": "quick" if opts.quick else "full",
        "plan": asdict(plan),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "elapsed_s": time.monotonic() - t_start,
        "versions": versions(),
        "machine": machine(),
        "ceiling": ceiling,
        "rows": rows,
        "held": held,
        "cluster": cluster,
        "cold_start": cold,
        "instructions": {**instructions, "pairs": plan.callgrind_pairs},
        "keyed_instructions": keyed_instructions,
        "waiting": waited,
        "violations": violations,
        "failures": failures,
        "http_subject": http_base is not None,
        "raw": {str(i): [asdict(r) for r in rs] for i, rs in by_config.items()},
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    if not opts.no_docs:
        import report as report_mod  # matplotlib only when docs are written

        report_mod.write(report, DOCS, IMG)
        print(f"wrote {os.path.join(DOCS, 'benchmarks.md')}")
    print(f"done in {report['elapsed_s']:.0f} s")
    if violations:
        print("\n".join(["!" * 8 + " " + v for v in violations]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
