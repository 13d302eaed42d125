"""Shared benchmark machinery: a private redis-server, Redis-side cost, and the runners.

Everything here talks to a redis-server that this module started itself on a free loopback
port (never the one on 6379), and every server and child process is stopped in a ``finally``.

A *subject* is what is measured. Python subjects are ``PySubject``: ``open(cfg)`` is called
once per worker (after fork, so each worker has its own connection) and returns a ``Session``
whose ``acquire(lease_id)`` returns a handle (anything but None) when a slot was granted and
None when it was refused, and whose ``release(handle)`` gives the slot back. Node peers are
``NodeSubject``s run through ``bench/peers/*.mjs``; they print one JSON line that carries the
same fields, including the raw ``INFO`` text taken just before and after their timed phase.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from guard.server.embedded import private_redis_args

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SCRIPT_COMMANDS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")


# --------------------------------------------------------------------------- redis-server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A private, non-persistent redis-server on loopback; ``url`` is where to reach it."""

    port: int
    proc: subprocess.Popen[bytes]
    workdir: str
    unixsocket: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)


def start_redis(unixsocket: bool = False, timeout: float = 10.0) -> RedisServer:
    workdir = tempfile.mkdtemp(prefix="guard-bench-redis-")
    port = free_port()
    args = ["redis-server", *private_redis_args(port, workdir)]
    args += ["--logfile", os.path.join(workdir, "log")]
    sock = os.path.join(workdir, "redis.sock") if unixsocket else None
    if sock:
        args += ["--unixsocket", sock, "--unixsocketperm", "700"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port=port, proc=proc, workdir=workdir, unixsocket=sock)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if server.client(socket_timeout=1).ping():
                return server
        except redis.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_redis(server)
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.05)


def stop_redis(server: RedisServer) -> None:
    try:
        if server.proc.poll() is None:
            with contextlib.suppress(redis.RedisError):
                server.client(socket_timeout=2).shutdown(nosave=True)
            try:
                server.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(timeout=5)
    finally:
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(unixsocket: bool = False) -> Iterator[RedisServer]:
    server = start_redis(unixsocket=unixsocket)
    try:
        yield server
    finally:
        stop_redis(server)


# --------------------------------------------------------------------------- Redis-side cost


@dataclass
class InfoSnapshot:
    cpu_main_us: float  # used_cpu_user_main_thread + used_cpu_sys_main_thread
    calls: dict[str, int]
    usec: dict[str, int]
    reads: int  # total_reads_processed
    used_memory: int


def parse_info(text: str) -> InfoSnapshot:
    """Parse the raw text of ``INFO cpu commandstats stats memory``."""
    flat: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            flat[k.strip()] = v.strip()
    calls: dict[str, int] = {}
    usec: dict[str, int] = {}
    for k, v in flat.items():
        if k.startswith("cmdstat_"):
            fields = dict(kv.split("=", 1) for kv in v.split(","))
            name = k[len("cmdstat_") :]
            calls[name] = int(fields["calls"])
            usec[name] = int(fields["usec"])
    cpu = float(flat["used_cpu_user_main_thread"]) + float(flat["used_cpu_sys_main_thread"])
    return InfoSnapshot(
        cpu_main_us=cpu * 1e6,
        calls=calls,
        usec=usec,
        reads=int(flat["total_reads_processed"]),
        used_memory=int(flat["used_memory"]),
    )


class InfoProbe:
    """One raw connection, opened up front, for INFO snapshots.

    Opening it before the first snapshot keeps its own handshake (HELLO) out of the deltas,
    and reading the raw text means Python and Node snapshots are parsed by the same code.
    """

    def __init__(self, client: redis.Redis) -> None:
        kw = client.connection_pool.connection_kwargs
        self.conn = redis.Connection(host=kw.get("host", "127.0.0.1"), port=kw.get("port", 6379))
        self.conn.connect()

    def snapshot(self) -> InfoSnapshot:
        self.conn.send_command("INFO", "cpu", "commandstats", "stats", "memory")
        raw = self.conn.read_response()
        return parse_info(raw.decode() if isinstance(raw, bytes) else str(raw))

    def close(self) -> None:
        self.conn.disconnect()


def info_snapshot(client: redis.Redis) -> InfoSnapshot:
    probe = InfoProbe(client)
    try:
        return probe.snapshot()
    finally:
        probe.close()


@dataclass
class Cost:
    """Redis-side cost per acquire+release pair between two INFO snapshots.

    ``cmd_us`` sums ``usec`` over every command in INFO commandstats. Redis also lists the
    commands a script runs, so a script's body is counted in EVALSHA *and* in its inner
    commands; ``script_us`` is the EVAL*/FCALL* part alone. ``cpu_us`` (main-thread CPU) has no
    such overlap and also covers reading, parsing and replying. ``reads`` is
    ``total_reads_processed``: read events, i.e. round trips unless a client pipelines.
    """

    pairs: int
    cpu_us: float
    cmd_us: float
    script_us: float
    reads: float
    calls: dict[str, float] = field(default_factory=dict)
    usec: dict[str, float] = field(default_factory=dict)  # per command name, per pair

    def top_level_us(self, commands: tuple[str, ...]) -> float:
        """Command time per pair of the commands a client sent itself (no script-inner ones)."""
        return sum(v for k, v in self.usec.items() if k in commands)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "cpu_us": self.cpu_us,
            "cmd_us": self.cmd_us,
            "script_us": self.script_us,
            "reads": self.reads,
            "calls": self.calls,
            "usec": self.usec,
        }


def cost_between(before: InfoSnapshot, after: InfoSnapshot, pairs: int) -> Cost:
    n = max(1, pairs)
    names = [k for k in after.calls if k != "info"]  # our own snapshots are not the subject's
    dcalls = {k: after.calls[k] - before.calls.get(k, 0) for k in names}
    dusec = {k: after.usec[k] - before.usec.get(k, 0) for k in names}
    script = sum(v for k, v in dusec.items() if k in SCRIPT_COMMANDS)
    return Cost(
        pairs=pairs,
        cpu_us=(after.cpu_main_us - before.cpu_main_us) / n,
        cmd_us=sum(dusec.values()) / n,
        script_us=script / n,
        reads=max(0, after.reads - before.reads - 1) / n,  # -1: the INFO read itself
        calls={k: v / n for k, v in sorted(dcalls.items()) if v},
        usec={k: v / n for k, v in sorted(dusec.items()) if v},
    )


def redis_cost(client: redis.Redis, fn: Callable[[], object], n: int) -> Cost:
    """Run ``fn`` n times serially; Redis main-thread CPU, command time and reads per call."""
    probe = InfoProbe(client)
    try:
        before = probe.snapshot()
        for _ in range(n):
            fn()
        after = probe.snapshot()
    finally:
        probe.close()
    return cost_between(before, after, n)


# --------------------------------------------------------------------------- subjects


@dataclass(frozen=True)
class BenchConfig:
    url: str  # redis://127.0.0.1:PORT/0 of the private server
    key: str  # semaphore key / namespace, unique per run
    limit: int
    ttl: float = 30.0  # seconds a lease lives if never released


class Session(Protocol):
    def acquire(self, lease_id: str) -> object | None: ...
    def release(self, handle: object) -> None: ...
    def close(self) -> None: ...


@dataclass
class CallableSession:
    """A Session made of plain callables: the usual way to wrap an SDK."""

    acquire_fn: Callable[[str], object | None]
    release_fn: Callable[[object], object]
    close_fn: Callable[[], object] = lambda: None

    def acquire(self, lease_id: str) -> object | None:
        return self.acquire_fn(lease_id)

    def release(self, handle: object) -> None:
        self.release_fn(handle)

    def close(self) -> None:
        self.close_fn()


@dataclass(frozen=True)
class PySubject:
    name: str
    open: Callable[[BenchConfig], Session]  # once per worker, inside the worker
    setup: Callable[[BenchConfig], None] | None = None  # once per run (configure limits)
    note: str = ""
    top_level: tuple[str, ...] = ("evalsha",)  # commands the client sends (commandstats)


@dataclass(frozen=True)
class NodeSubject:
    name: str
    driver: str  # file under bench/peers/
    mode: str  # shared | conns | procs
    note: str = ""
    top_level: tuple[str, ...] = ("evalsha",)
    setup: Callable[[BenchConfig], None] | None = None  # once per run (configure limits)
    # more driver arguments (name, JSON value), merged into its argv object
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass
class Result:
    subject: str
    workload: str  # uncontended | contended
    mode: str  # threads | processes | shared | conns | procs
    workers: int
    pairs: int
    seconds: float
    pairs_per_s: float
    p50_us: float
    p99_us: float
    refused: int = 0
    attempts_per_pair: float | None = None
    max_holders: int | None = None
    cost: Cost | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


# --------------------------------------------------------------------------- Python runners


@dataclass
class _Spec:
    seconds: float
    max_pairs: int
    hold_s: float = 0.0
    retry_s: float = 0.001
    counter_key: str | None = None  # contended: INCR/DECR this key on a separate connection


def _worker_loop(
    subject: PySubject, cfg: BenchConfig, spec: _Spec, wid: int, ready: Any, go: Any
) -> dict[str, Any]:
    session = subject.open(cfg)
    counter = redis.Redis.from_url(cfg.url) if spec.counter_key else None
    prefix = f"{wid}-{uuid.uuid4().hex[:8]}"
    lat: list[int] = []
    attempts = refused = max_holders = 0
    try:
        warm = session.acquire(f"{prefix}-warm")  # connect and load scripts before timing
        if warm is not None:
            session.release(warm)
        if counter is not None:
            counter.ping()
        ready.wait()
        go.wait()
        t_start = time.monotonic()
        deadline = t_start + spec.seconds
        i = 0
        while i < spec.max_pairs and time.monotonic() < deadline:
            lease_id = f"{prefix}-{i}"
            t0 = time.perf_counter_ns()
            handle = session.acquire(lease_id)
            attempts += 1
            while handle is None and time.monotonic() < deadline:
                refused += 1
                time.sleep(spec.retry_s)
                handle = session.acquire(lease_id)
                attempts += 1
            if handle is None:
                break
            t1 = time.perf_counter_ns()
            if counter is not None:
                max_holders = max(max_holders, int(counter.incr(spec.counter_key or "")))
                time.sleep(spec.hold_s)
                counter.decr(spec.counter_key or "")
            t2 = time.perf_counter_ns()
            session.release(handle)
            lat.append((t1 - t0) + (time.perf_counter_ns() - t2))
            i += 1
        t_end = time.monotonic()
    finally:
        session.close()
        if counter is not None:
            counter.close()
    return {
        "lat": lat,
        "attempts": attempts,
        "refused": refused,
        "max_holders": max_holders,
        "t_end": t_end,
    }


def _proc_entry(
    subject: PySubject, cfg: BenchConfig, spec: _Spec, wid: int, ready: Any, go: Any, q: Any
) -> None:
    try:
        q.put(_worker_loop(subject, cfg, spec, wid, ready, go))
    except BaseException as exc:  # report, never hang the parent
        with contextlib.suppress(Exception):
            ready.abort()
        q.put({"error": repr(exc)})
        raise


def run_python(
    subject: PySubject,
    cfg: BenchConfig,
    workers: int,
    seconds: float,
    kind: str = "processes",
    workload: str = "uncontended",
    hold_ms: float = 0.0,
    retry_ms: float = 1.0,
    max_pairs: int = 2_000_000,
) -> Result:
    """Run ``workers`` threads or forked processes, each one caller with its own connection;
    ``shared``: ``workers`` threads of this process sharing one session (one ``open``, so
    one SDK client and its connection pool, as a threaded web server would).

    uncontended: back-to-back acquire+release pairs. contended: acquire (retrying every
    ``retry_ms`` while refused), INCR a side counter on a separate connection, hold
    ``hold_ms``, DECR, release; the maximum INCR result is the most holders seen at once.
    """
    counter_key = f"bench:holders:{uuid.uuid4().hex}" if workload == "contended" else None
    spec = _Spec(seconds, max_pairs, hold_ms / 1000, retry_ms / 1000, counter_key)
    if subject.setup:
        subject.setup(cfg)
    admin = redis.Redis.from_url(cfg.url)
    probe = InfoProbe(admin)
    outs: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    shared: Session | None = None
    if kind == "shared":
        clients0 = int(admin.info("clients")["connected_clients"])
        shared = subject.open(cfg)
        one = shared
        subject = PySubject(
            subject.name,
            open=lambda _cfg: CallableSession(one.acquire, one.release),
            note=subject.note,
            top_level=subject.top_level,
        )
    if kind in ("threads", "shared"):
        ready_t, go_t = threading.Barrier(workers + 1), threading.Event()
        box: list[dict[str, Any]] = []

        def entry(wid: int) -> None:
            try:
                box.append(_worker_loop(subject, cfg, spec, wid, ready_t, go_t))
            except BaseException as exc:
                box.append({"error": repr(exc)})
                with contextlib.suppress(threading.BrokenBarrierError):
                    ready_t.abort()

        threads = [threading.Thread(target=entry, args=(w,), daemon=True) for w in range(workers)]
        for t in threads:
            t.start()
        try:
            ready_t.wait(timeout=60)
            before = probe.snapshot()
            t_go = time.monotonic()
            go_t.set()
        finally:
            go_t.set()
            for t in threads:
                t.join(timeout=seconds + 60)
        outs = box
    else:
        ctx = mp.get_context("fork")
        ready_p, go_p, q = ctx.Barrier(workers + 1), ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_proc_entry, args=(subject, cfg, spec, w, ready_p, go_p, q))
            for w in range(workers)
        ]
        try:
            for p in procs:
                p.start()
            ready_p.wait(timeout=60)
            before = probe.snapshot()
            t_go = time.monotonic()
            go_p.set()
            for _ in procs:
                outs.append(q.get(timeout=seconds + 60))
        finally:
            go_p.set()
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
                    p.join()
    after = probe.snapshot()
    probe.close()
    if shared is not None:  # its pool is still open: how many connections it used
        extra["connections"] = int(admin.info("clients")["connected_clients"]) - clients0
        shared.close()
    admin.close()
    errors = [o["error"] for o in outs if "error" in o]
    if errors or len(outs) != workers:
        raise RuntimeError(f"{subject.name}: worker failed: {errors[:3]}")
    lat = sorted(x / 1000 for o in outs for x in o["lat"])
    pairs = len(lat)
    elapsed = max(o["t_end"] for o in outs) - t_go
    attempts = sum(o["attempts"] for o in outs)
    return Result(
        subject=subject.name,
        workload=workload,
        mode=kind,
        workers=workers,
        pairs=pairs,
        seconds=elapsed,
        pairs_per_s=pairs / elapsed if elapsed > 0 else 0.0,
        p50_us=percentile(lat, 0.50),
        p99_us=percentile(lat, 0.99),
        refused=sum(o["refused"] for o in outs),
        attempts_per_pair=attempts / pairs if pairs else None,
        max_holders=max(o["max_holders"] for o in outs) if counter_key else None,
        cost=cost_between(before, after, pairs),
        extra=extra,
    )


# --------------------------------------------------------------------------- Node runner


def node_modules_ready() -> bool:
    return os.path.isdir(os.path.join(BENCH_DIR, "node_modules", "ioredis"))


def run_node(
    subject: NodeSubject,
    cfg: BenchConfig,
    port: int,
    workers: int,
    seconds: float,
    workload: str = "uncontended",
    hold_ms: float = 0.0,
    retry_ms: float = 1.0,
    max_pairs: int = 2_000_000,
) -> Result:
    args = {
        "port": port,
        "host": "127.0.0.1",
        "key": cfg.key,
        "workload": workload,
        "workers": workers,
        "mode": subject.mode,
        "seconds": seconds,
        "max_pairs": max_pairs,
        "limit": cfg.limit,
        "ttl_ms": int(cfg.ttl * 1000),
        "hold_ms": hold_ms,
        "retry_ms": retry_ms,
        "counter_key": f"bench:holders:{uuid.uuid4().hex}" if workload == "contended" else None,
        **dict(subject.extra),
    }
    driver = os.path.join(BENCH_DIR, "peers", subject.driver)
    proc = subprocess.Popen(
        ["node", driver, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=seconds + 120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)  # the driver and any worker processes it forked
            proc.wait()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{subject.name}: node driver failed ({proc.returncode}): {err[-2000:]}")
    r = json.loads(lines[-1])
    cost = None
    if r.get("info_before") and r.get("info_after"):
        cost = cost_between(parse_info(r["info_before"]), parse_info(r["info_after"]), r["pairs"])
    return Result(
        subject=subject.name,
        workload=workload,
        mode=subject.mode,
        workers=workers,
        pairs=r["pairs"],
        seconds=r["seconds"],
        pairs_per_s=r["pairs_per_s"],
        p50_us=r["p50_us"],
        p99_us=r["p99_us"],
        refused=r.get("refused", 0),
        attempts_per_pair=r.get("attempts_per_pair"),
        max_holders=r.get("max_holders"),
        cost=cost,
        extra={"counter": r.get("counter"), "connections": r.get("connections")},
    )


# --------------------------------------------------------------------------- ceiling


def redis_benchmark_ceiling(
    port: int, requests: int = 100_000, clients: tuple[int, ...] = (1, 16, 64)
) -> dict[str, float]:
    """requests/s from ``redis-benchmark`` (C, one thread, no pipelining) on the same server.

    ``EVALSHA`` of a trivial script (``return 1``) at each client count, and SET/GET at the
    largest for context. An acquire+release pair is two round trips, so ~half these rates.
    """
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        sha = str(client.script_load("return 1"))
    finally:
        client.close()
    base = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "--csv"]
    out: dict[str, float] = {}

    def run(args: list[str]) -> list[tuple[str, float]]:
        res = subprocess.run(base + args, capture_output=True, text=True, timeout=300, check=True)
        rows = list(csv.reader(io.StringIO(res.stdout)))
        return [(r[0], float(r[1])) for r in rows if len(r) > 1 and r[0] != "test"]

    for c in clients:
        n = requests if c > 1 else max(1000, requests // 5)
        for _, rps in run(["-c", str(c), "-n", str(n), "EVALSHA", sha, "0"]):
            out[f"EVALSHA c={c}"] = rps
    c = max(clients)
    for name, rps in run(["-c", str(c), "-n", str(requests), "-t", "set,get"]):
        out[f"{name} c={c}"] = rps
    return out


def median(values: list[float]) -> float:
    vals = [v for v in values if v == v]  # drop NaN
    return statistics.median(vals) if vals else float("nan")


# --------------------------------------------------------------------------- cluster


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@contextlib.contextmanager
def redis_cluster(shards: int = 3, timeout: float = 30.0) -> Iterator[list[RedisServer]]:
    """``shards`` cluster-enabled primaries (no replicas) joined with ``redis-cli --cluster
    create``; every node is stopped in ``finally``."""
    nodes: list[RedisServer] = []
    try:
        for _ in range(shards):
            workdir = tempfile.mkdtemp(prefix="guard-bench-cluster-")
            port = free_cluster_port()
            args = ["redis-server", *private_redis_args(port, workdir), "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", os.path.join(workdir, "nodes.conf")]
            args += ["--logfile", os.path.join(workdir, "log")]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            nodes.append(RedisServer(port=port, proc=proc, workdir=workdir))
        deadline = time.monotonic() + timeout
        for n in nodes:
            while True:
                try:
                    if n.client(socket_timeout=1).ping():
                        break
                except redis.ConnectionError:
                    pass
                if n.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node on {n.port} did not start")
                time.sleep(0.05)
        addrs = [f"127.0.0.1:{n.port}" for n in nodes]
        create = ["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas", "0"]
        subprocess.run(
            [*create, "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        while True:
            infos = [n.client().cluster("info") for n in nodes]  # parsed by redis-py
            if all(
                "cluster_state:ok" in _text(i) or _text(dict(i).get("cluster_state")) == "ok"
                for i in infos
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        yield nodes
    finally:
        for n in nodes:
            stop_redis(n)


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def slot_owner(nodes: list[RedisServer], key: str) -> int:
    """Index in ``nodes`` of the primary that serves ``key``'s hash slot."""
    client = nodes[0].client()
    try:
        slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(primary[1])
                return next(i for i, n in enumerate(nodes) if n.port == port)
    finally:
        client.close()
    raise RuntimeError(f"no node serves {key!r}")


# --------------------------------------------------------------------------- guard serve


@dataclass
class HttpServer:
    base: str  # http://127.0.0.1:PORT
    port: int
    proc: subprocess.Popen[bytes]
    log: str


@contextlib.contextmanager
def guard_http_server(
    redis_url: str, workers: int, threads: int, client_token: str, admin_token: str
) -> Iterator[HttpServer]:
    """``guard serve`` (gunicorn, gthread) on a free loopback port, in its own process group,
    killed with all its workers in ``finally``."""
    port = free_port()
    fd, log_path = tempfile.mkstemp(prefix="guard-bench-http-", suffix=".log")
    log = os.fdopen(fd, "wb")
    env = dict(
        os.environ,
        GUARD_REDIS_URL=redis_url,
        GUARD_CLIENT_TOKENS=client_token,
        GUARD_ADMIN_TOKENS=admin_token,
        GUARD_THREADS=str(threads),
        GUARD_LOG_LEVEL="warning",
    )
    exe = os.path.join(os.path.dirname(sys.executable), "guard")  # the venv's console script
    cmd = [exe if os.path.exists(exe) else "guard", "serve", "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    server = HttpServer(f"http://127.0.0.1:{port}", port, proc, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{server.base}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(log_path) as f:
                    raise RuntimeError(f"guard serve did not start: {f.read()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log_path)
