"""``guard demo``: the story guard was built for, replayed in seconds with no AWS.

One AWS account pool (the regional Lambda concurrency) serves two groups: a customer-facing
API (steady traffic, short invocations) and an ETL group of SQS consumers. A backlog lands
on the ETL queue; Lambda's SQS poller scales its consumers up and they burst into the pool.

- **without guard's limits** the ETL burst takes every free slot of the pool and the API's
  invocations are throttled by Lambda for as long as the burst lasts;
- **with them** (ETL capped, the API's headroom reserved) a refused ETL consumer hands its
  message back to the queue at once, the pool never fills and the API is never throttled.

The pool, the queue and the clock are simulated (virtual one-second ticks, no randomness: the
same numbers on every run); every admission is a real acquire/release against a real store
(the embedded redis-server child of ``guard serve``, or ``--redis-url``). A run that took no
lease from guard is the *without* case: guard then holds no limits, only counts."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

GROUPS = ("api", "etl")
FUNCTIONS = {"api": "api-checkout", "etl": "etl-ingest"}


@dataclass(frozen=True)
class Scenario:
    """The story's numbers; `short` keeps its shape at a third of the length (``make test``)."""

    pool: int = 50  # the account's Lambda concurrency
    ticks: int = 240  # virtual seconds
    api_per_tick: int = 4  # API requests per second ...
    api_hold: int = 3  # ... each running 3 s (about 12 in flight)
    burst_at: int = 30  # when the backlog lands on the ETL queue
    backlog: int = 500  # messages
    etl_hold: int = 8  # seconds per batch
    poller_step: int = 5  # the SQS poller adds this many consumers per second ...
    poller_max: int = 100  # ... up to this many
    etl_max: int = 30  # guard: the ETL group's max_concurrency
    api_reserved: int = 15  # guard: the API group's reserved headroom

    @classmethod
    def short(cls) -> Scenario:
        return cls(ticks=80, burst_at=10, backlog=150)

    def limits(self) -> dict[str, Any]:
        """guard's settings for the *with* run (the same shape as a limits file)."""
        return {
            "max_concurrency": self.pool,
            "groups": {
                "api": {"reserved": self.api_reserved, "members": [FUNCTIONS["api"]]},
                "etl": {"max_concurrency": self.etl_max, "members": [FUNCTIONS["etl"]]},
            },
        }


@dataclass
class GroupStats:
    completed: int = 0
    throttled: int = 0  # refused by the account pool (Lambda throttles)
    refused: int = 0  # refused by guard (the message goes back to the queue)
    peak: int = 0
    in_use: list[int] = field(default_factory=list)  # per tick
    throttles: list[int] = field(default_factory=list)  # per tick


@dataclass
class RunResult:
    name: str
    groups: dict[str, GroupStats]
    pool_peak: int = 0
    backlog_left: int = 0
    drained_at: int | None = None  # tick the ETL backlog was empty and idle


@dataclass
class DemoResult:
    scenario: Scenario
    without: RunResult
    with_guard: RunResult


def _interleave(a: list[str], b: list[str]) -> list[str]:
    """Spread two arrival lists evenly over one tick (deterministic)."""
    if not a or not b:
        return a + b
    out: list[tuple[float, int, str]] = [((i + 0.5) / len(a), 0, x) for i, x in enumerate(a)]
    out += [((i + 0.5) / len(b), 1, x) for i, x in enumerate(b)]
    return [x for _, _, x in sorted(out)]


def run_once(guard_client: Any, sc: Scenario, name: str) -> RunResult:
    """One replay. `guard_client` is a `guard.Guard` on a namespace holding either no limits
    (without) or `Scenario.limits` (with); every invocation that gets a pool slot acquires."""
    from .errors import Throttled

    stats = {gname: GroupStats() for gname in GROUPS}
    running: list[tuple[int, str, Any]] = []  # (ends at tick, group, lease)
    backlog, pollers, result = 0, 0, RunResult(name, stats)
    for t in range(sc.ticks):
        still = []
        for end, gname, lease in running:
            if end <= t:
                lease.release()
                stats[gname].completed += 1
            else:
                still.append((end, gname, lease))
        running = still
        if t == sc.burst_at:
            backlog += sc.backlog
        pollers = min(sc.poller_max, pollers + sc.poller_step) if backlog else 0
        busy_etl = sum(1 for _, gname, _ in running if gname == "etl")
        etl_tries = max(0, min(backlog, pollers - busy_etl))
        arrivals = _interleave(["api"] * sc.api_per_tick, ["etl"] * etl_tries)
        throttled_now = dict.fromkeys(GROUPS, 0)
        for gname in arrivals:
            if gname == "etl":
                backlog -= 1
            if len(running) >= sc.pool:  # Lambda: the account pool is full
                stats[gname].throttled += 1
                throttled_now[gname] += 1
                backlog += gname == "etl"  # the message stays on the queue
                continue
            try:
                lease = guard_client.acquire(FUNCTIONS[gname], ttl=600)
            except Throttled:
                stats[gname].refused += 1  # returns at once: the slot is free again
                backlog += gname == "etl"
                continue
            hold = sc.api_hold if gname == "api" else sc.etl_hold
            running.append((t + hold, gname, lease))
        for gname in GROUPS:
            n = sum(1 for _, g, _ in running if g == gname)
            stats[gname].in_use.append(n)
            stats[gname].throttles.append(throttled_now[gname])
            stats[gname].peak = max(stats[gname].peak, n)
        result.pool_peak = max(result.pool_peak, len(running))
        if (
            result.drained_at is None
            and t > sc.burst_at
            and backlog == 0
            and not any(g == "etl" for _, g, _ in running)
        ):
            result.drained_at = t
    for _, _, lease in running:
        lease.release()
    result.backlog_left = backlog
    return result


def run_demo(redis_url: str, sc: Scenario, namespace: str = "guard-demo") -> DemoResult:
    """Both runs on the store at `redis_url`, in two scratch namespaces removed afterwards."""
    import redis

    from . import Guard, keys
    from .config_file import config_from_doc

    runs: dict[str, RunResult] = {}
    for name in ("without", "with"):
        ns = f"{namespace}-{name}-{os.getpid()}"
        g = Guard.from_url(redis_url, namespace=ns, timeout=5.0)
        try:
            if name == "with":
                g.admin.replace_config(config_from_doc(sc.limits()))
            runs[name] = run_once(g, sc, name)
        finally:
            g.close()
            r = redis.Redis.from_url(redis_url)
            try:
                found = list(r.scan_iter(match=f"{keys.PREFIX}:{{{ns}}}:*"))
                if found:
                    r.delete(*found)
                r.srem(keys.NAMESPACES, ns)
            finally:
                r.close()
    return DemoResult(sc, runs["without"], runs["with"])


def table(res: DemoResult) -> list[str]:
    """The side-by-side comparison, one line per row."""
    a, b = res.without, res.with_guard
    rows: list[tuple[str, Callable[[RunResult], Any]]] = [
        ("API throttled by Lambda", lambda r: r.groups["api"].throttled),
        ("API requests served", lambda r: r.groups["api"].completed),
        ("API peak in use", lambda r: r.groups["api"].peak),
        ("ETL throttled by Lambda", lambda r: r.groups["etl"].throttled),
        ("ETL deferred by guard", lambda r: r.groups["etl"].refused),
        ("ETL batches done", lambda r: r.groups["etl"].completed),
        ("ETL peak in use", lambda r: r.groups["etl"].peak),
        ("account pool peak", lambda r: f"{r.pool_peak} / {res.scenario.pool}"),
        ("ETL backlog drained at", lambda r: "-" if r.drained_at is None else f"{r.drained_at}s"),
    ]
    w = max(len(label) for label, _ in rows)
    out = [f"{'':{w}}  {'without guard':>14}  {'with guard':>12}"]
    out += [f"{label:{w}}  {f(a)!s:>14}  {f(b)!s:>12}" for label, f in rows]
    return out


def plot(res: DemoResult, path: str) -> None:
    """In use and throttles per group over time, both runs (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = res.scenario
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True, sharey="row")
    colors = {"api": "#2563eb", "etl": "#f59e0b"}
    for col, run in enumerate((res.without, res.with_guard)):
        top, bottom = axes[0][col], axes[1][col]
        for gname in GROUPS:
            s = run.groups[gname]
            top.plot(s.in_use, label=f"{gname} in use", color=colors[gname])
            bottom.plot(s.throttles, label=f"{gname} throttled by Lambda", color=colors[gname])
        top.axhline(sc.pool, color="#991b1b", linestyle="--", linewidth=1, label="account pool")
        top.set_title("without guard" if run is res.without else "with guard")
        top.set_ylim(0, sc.pool * 1.15)
        top.set_ylabel("in use")
        bottom.set_ylabel("throttles / s")
        bottom.set_xlabel("seconds")
        top.legend(loc="upper right", fontsize=8)
        bottom.legend(loc="upper right", fontsize=8)
    fig.suptitle("API and ETL bursting on one account pool")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@click.command()
@click.option("--short", is_flag=True, help="a shorter replay (what `make test` runs)")
@click.option(
    "--plot",
    "plot_path",
    default="guard-demo.png",
    show_default=True,
    help="where to write the PNG plot ('' for none)",
)
@click.option(
    "--redis-url",
    default=None,
    help="run on this Redis (scratch namespaces, removed after) instead of an embedded "
    "redis-server child",
)
def demo(short: bool, plot_path: str, redis_url: str | None) -> None:
    """Replay an ETL burst next to a customer API, without and with guard's limits."""
    sc = Scenario.short() if short else Scenario()
    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            click.echo("no plot: matplotlib is not installed (pip install matplotlib)", err=True)
            plot_path = ""
    store = None
    if not redis_url:
        from .server import embedded

        store = embedded.start()
        redis_url = store.url
    try:
        click.echo(
            f"account pool {sc.pool}; API {sc.api_per_tick}/s x {sc.api_hold}s; {sc.backlog} "
            f"SQS messages land at {sc.burst_at}s (ETL {sc.etl_hold}s each); guard: etl max "
            f"{sc.etl_max}, api reserved {sc.api_reserved}"
        )
        res = run_demo(redis_url, sc)
    finally:
        if store is not None:
            store.stop()
    for line in table(res):
        click.echo(line)
    if plot_path:
        plot(res, plot_path)
        click.echo(f"plot: {plot_path}")
