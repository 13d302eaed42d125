"""What the benchmark measures. Add a subject here and run_all.py picks it up.

A Python subject is ``harness.PySubject(name, open, setup)``: ``setup(cfg)`` runs once per
measurement (configure limits), ``open(cfg)`` runs once per worker *inside* the worker and
returns a session whose ``acquire(lease_id)`` gives a handle or None (refused) and whose
``release(handle)`` frees it. ``cfg`` is a ``harness.BenchConfig``: ``url``, ``key`` (unique per
measurement: use it as guard's namespace), ``limit`` and ``ttl``.

guard's subjects (``guard_subjects()``): the SDK (``Guard.from_url(url, namespace=cfg.key)``,
``acquire(fn, ttl=, lease_id=)`` / ``lease.release()``, ``guard.Throttled`` → None) as forked
processes and as threads, and — with a running ``guard serve`` — the HTTP lease API
(``POST /v1/namespaces/{ns}/leases`` 201 → lease id, 429 → None; ``DELETE …/leases/{id}``) on
one kept-alive ``http.client.HTTPConnection`` per worker. Each measurement's namespace checks
three levels on every admission (``guard_limits``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.parse

import redis
from harness import BenchConfig, CallableSession, NodeSubject, PySubject, Session
from reference import ReferenceSemaphore


def _reference_open(cfg: BenchConfig) -> Session:
    client = redis.Redis.from_url(cfg.url)
    sem = ReferenceSemaphore(client, cfg.key, cfg.limit)

    def acquire(lease_id: str) -> str | None:
        return lease_id if sem.acquire(lease_id, cfg.ttl) else None

    return CallableSession(acquire, lambda h: sem.release(str(h)), client.close)


REFERENCE = PySubject(
    "reference (redis-py)",
    open=_reference_open,
    note="bench/reference.py: one EVALSHA (TIME, ZREMRANGEBYSCORE, ZCARD, ZADD) + ZREM",
    top_level=("evalsha", "zrem"),
)

# Python subjects run as forked processes (one connection each) and, where listed, threads.
PY_SUBJECTS: list[tuple[PySubject, tuple[str, ...]]] = [
    (REFERENCE, ("processes", "threads")),
]

NODE_SUBJECTS: list[NodeSubject] = [
    NodeSubject("redis-semaphore", "redis_semaphore.mjs", mode, top_level=("evalsha", "zrem"))
    for mode in ("shared", "conns", "procs")
] + [NodeSubject("bottleneck", "bottleneck.mjs", mode) for mode in ("shared", "conns", "procs")]


# guard's namespace for a measurement (cfg.key): three levels checked on every admission.
GUARD_FUNCTION = "bench"
GUARD_GROUP = "bench-group"
HTTP_CLIENT_TOKEN = "bench-client-token"
HTTP_ADMIN_TOKEN = "bench-admin-token"


def guard_limits(cfg: BenchConfig) -> dict[str, int]:
    """Account, group and function max for one measurement: the function's own max is
    ``cfg.limit`` (the binding one); the group's is 2x and the account's 4x, so the script
    reads and checks all three levels but only the function level ever refuses."""
    return {"account": cfg.limit * 4, "group": cfg.limit * 2, "function": cfg.limit}


def lease_id_128(lease_id: str) -> bytes:
    """guard's lease ids are 128 bits; the harness's ids are strings, so hash them."""
    return hashlib.blake2b(lease_id.encode(), digest_size=16).digest()


def _guard_setup(cfg: BenchConfig) -> None:
    import guard

    lim = guard_limits(cfg)
    g = guard.Guard.from_url(cfg.url, namespace=cfg.key, timeout=5)
    try:
        g.admin.set_namespace(max_concurrency=lim["account"])
        g.admin.put_group(GUARD_GROUP, max_concurrency=lim["group"], members=[GUARD_FUNCTION])
        g.admin.put_function(GUARD_FUNCTION, max_concurrency=lim["function"])
    finally:
        g.close()


def _guard_open(cfg: BenchConfig) -> Session:
    import guard

    g = guard.Guard.from_url(cfg.url, namespace=cfg.key, timeout=5)

    def acquire(lease_id: str) -> object | None:
        try:
            return g.acquire(GUARD_FUNCTION, ttl=cfg.ttl, lease_id=lease_id_128(lease_id))
        except guard.Throttled:
            return None

    return CallableSession(acquire, lambda lease: lease.release(), g.close)  # type: ignore[attr-defined]


def node_sdk_subjects() -> list[NodeSubject]:
    """guard's Node SDK (bench/peers/guard_node.mjs) in the three modes of the Node peers,
    once ``clients/node`` is built (``make node-build``)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, "clients", "node", "dist", "cjs", "index.js")):
        return []
    note = "Guard.acquire/Lease.release (Node, ioredis): one EVALSHA each; three levels checked"
    return [
        NodeSubject("guard Node SDK", "guard_node.mjs", mode, note=note, setup=_guard_setup)
        for mode in ("shared", "conns", "procs")
    ]


# "Keyed + rate limited decision" (issue 14): guard's Node SDK with a key on every acquire and
# rates configured, beside the same SDK with none, beside rate-limiter-flexible (npm). Limits
# and rates are far above what a run reaches: every decision is a grant, so the row measures
# the cost of deciding, not of refusing.
KEYED_TENANTS = 64  # keys `tenant-0` … `tenant-63`, drawn at random per decision
KEYED_RATE = 1_000_000.0  # grants per second at every rate level (guard.model.MAX_RATE)
KEYED_BURST = 1_000_000  # guard.model.MAX_BURST


def _guard_keyed_setup(cfg: BenchConfig) -> None:
    """The three levels of ``_guard_setup`` plus a per-key cap at the function and a rate at
    every level — account, group, function and key: an acquire with a key checks and counts
    them all (4 concurrency levels, 4 GCRA levels)."""
    import dataclasses

    import guard

    lim = guard_limits(cfg)
    rate = {"rate_per_second": KEYED_RATE, "rate_burst": KEYED_BURST}
    g = guard.Guard.from_url(cfg.url, namespace=cfg.key, timeout=5)
    try:
        g.admin.set_namespace(max_concurrency=lim["account"])
        g.admin.put_group(
            GUARD_GROUP, max_concurrency=lim["group"], members=[GUARD_FUNCTION], **rate
        )
        g.admin.put_function(
            GUARD_FUNCTION,
            max_concurrency=lim["function"],
            key_max_concurrency=lim["function"],
            key_rate_per_second=KEYED_RATE,
            key_rate_burst=KEYED_BURST,
            **rate,
        )
        # the account rate: a namespace setting beside its max (no set_namespace field yet)
        c = g.admin.config()
        g.admin.replace_config(dataclasses.replace(c, **rate))
    finally:
        g.close()


KEYED_MODES = ("shared", "procs")


def keyed_rate_subjects() -> list[NodeSubject]:
    """The row's subjects: guard's Node SDK keyed + rate limited, the same with no key and no
    rate (``_guard_setup``), and rate-limiter-flexible's RateLimiterRedis (one ``consume`` per
    decision, nothing to release). Needs ``make node-build`` (guard) and ``bench/node_modules``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out: list[NodeSubject] = []
    if os.path.exists(os.path.join(root, "clients", "node", "dist", "cjs", "index.js")):
        for mode in KEYED_MODES:
            out.append(
                NodeSubject(
                    "guard Node SDK, key + rate",
                    "guard_node.mjs",
                    mode,
                    note="acquire(fn, {key}) + release: 4 concurrency levels and 4 rate levels",
                    setup=_guard_keyed_setup,
                    extra=(("keys", KEYED_TENANTS),),
                )
            )
            out.append(
                NodeSubject(
                    "guard Node SDK, no key, no rate",
                    "guard_node.mjs",
                    mode,
                    note="acquire(fn) + release: account, group and function max",
                    setup=_guard_setup,
                )
            )
    for mode in KEYED_MODES:
        out.append(
            NodeSubject(
                "rate-limiter-flexible",
                "rate_limiter_flexible.mjs",
                mode,
                note="RateLimiterRedis.consume(key): one EVALSHA per decision",
                extra=(("keys", KEYED_TENANTS),),
            )
        )
    return out


GUARD_SDK = PySubject(
    "guard SDK",
    open=_guard_open,
    setup=_guard_setup,
    note="Guard.acquire/Lease.release: one EVALSHA each; account, group and function checked",
)


class _Http:
    """One kept-alive HTTP/1.1 connection to ``guard serve`` (one per worker)."""

    def __init__(self, base: str, token: str) -> None:
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, doc: object | None = None) -> tuple[int, bytes]:
        body = json.dumps(doc).encode() if doc is not None else None
        self.conn.request(method, path, body=body, headers=self.headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def _http_subject(base: str) -> PySubject:
    def setup(cfg: BenchConfig) -> None:
        lim = guard_limits(cfg)
        h = _Http(base, HTTP_ADMIN_TOKEN)
        ns = f"/v1/namespaces/{cfg.key}"
        try:
            for path, doc in (
                (ns, {"max_concurrency": lim["account"]}),
                (
                    f"{ns}/groups/{GUARD_GROUP}",
                    {"max_concurrency": lim["group"], "members": [GUARD_FUNCTION]},
                ),
                (f"{ns}/functions/{GUARD_FUNCTION}", {"max_concurrency": lim["function"]}),
            ):
                status, text = h.call("PUT", path, doc)
                if status not in (200, 201):
                    raise RuntimeError(f"PUT {path}: {status} {text[:300]!r}")
        finally:
            h.conn.close()

    def open_(cfg: BenchConfig) -> Session:
        h = _Http(base, HTTP_CLIENT_TOKEN)
        leases = f"/v1/namespaces/{cfg.key}/leases"

        def acquire(lease_id: str) -> str | None:
            lid = lease_id_128(lease_id).hex()
            doc = {"function": GUARD_FUNCTION, "ttl_seconds": cfg.ttl, "lease_id": lid}
            status, text = h.call("POST", leases, doc)
            if status == 201:
                return lid
            if status == 429:
                return None
            raise RuntimeError(f"POST {leases}: {status} {text[:300]!r}")

        def release(lid: object) -> None:
            status, text = h.call("DELETE", f"{leases}/{lid}")
            if status != 204:
                raise RuntimeError(f"DELETE lease: {status} {text[:300]!r}")

        return CallableSession(acquire, release, h.conn.close)

    return PySubject(
        "guard HTTP",
        open=open_,
        setup=setup,
        note="guard serve (gunicorn gthread): POST …/leases 201/429, DELETE …/leases/{id} 204",
    )


def http_available() -> bool:
    """Whether this checkout's guard has the HTTP service (``guard serve``)."""
    try:
        import guard.server  # noqa: F401
    except ImportError:
        return False
    return True


def guard_subjects(http_base: str | None = None) -> list[tuple[PySubject, tuple[str, ...]]]:
    """guard's subjects: the SDK (processes and threads) and, with a running ``guard serve``
    at ``http_base``, the HTTP lease API (processes)."""
    try:
        import guard
    except ImportError:
        return []
    if not hasattr(guard, "Guard"):
        return []
    out: list[tuple[PySubject, tuple[str, ...]]] = [(GUARD_SDK, ("processes", "threads"))]
    if http_base:
        out.append((_http_subject(http_base), ("processes",)))
    return out
