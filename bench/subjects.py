"""What the benchmark measures. Add a subject here and run_all.py picks it up.

A Python subject is ``harness.PySubject(name, open, setup)``: ``setup(cfg)`` runs once per
measurement (configure limits), ``open(cfg)`` runs once per worker *inside* the worker and
returns a session whose ``acquire(lease_id)`` gives a handle or None (refused) and whose
``release(handle)`` frees it. ``cfg`` is a ``harness.BenchConfig``: ``url``, ``key`` (unique per
measurement: use it as guard's namespace), ``limit`` and ``ttl``.

guard's SDK plugs in like this (once ``guard`` is importable)::

    import guard

    def guard_setup(cfg):
        g = guard.Guard.from_url(cfg.url, namespace=cfg.key)
        g.admin.put_function("bench", max_concurrency=cfg.limit)

    def guard_open(cfg):
        g = guard.Guard.from_url(cfg.url, namespace=cfg.key)

        def acquire(lease_id):
            try:
                return g.acquire("bench", ttl=cfg.ttl, lease_id=lease_id)
            except guard.Throttled:
                return None

        return CallableSession(acquire, lambda lease: lease.release())

    PySubject("guard SDK", open=guard_open, setup=guard_setup)

guard's HTTP API the same way, with ``POST /v1/namespaces/{ns}/leases`` as acquire (201 →
handle = lease id, 429 → None) and ``DELETE …/leases/{id}`` as release on a kept-alive
``http.client.HTTPConnection`` per worker.
"""

from __future__ import annotations

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
)

# Python subjects run as forked processes (one connection each) and, where listed, threads.
PY_SUBJECTS: list[tuple[PySubject, tuple[str, ...]]] = [
    (REFERENCE, ("processes", "threads")),
]

NODE_SUBJECTS: list[NodeSubject] = [
    NodeSubject("redis-semaphore", "redis_semaphore.mjs", mode)
    for mode in ("shared", "conns", "procs")
] + [NodeSubject("bottleneck", "bottleneck.mjs", mode) for mode in ("shared", "conns", "procs")]


def guard_subjects() -> list[tuple[PySubject, tuple[str, ...]]]:
    """guard's subjects, once its SDK is importable; empty until then."""
    try:
        import guard
    except ImportError:
        return []
    if not hasattr(guard, "Guard"):
        return []
    return []  # the lead adds guard's PySubject(s) here; see the module docstring
