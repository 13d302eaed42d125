"""Fixtures for the fault suite: a private redis-server per test (it gets stopped, killed
and restarted), the TCP proxy, and `record` for the figures in docs/faults.md.

Set ``GUARD_FAULT_FIGURES=path.json`` to collect the measured figures into one file."""

from __future__ import annotations

import json
import os
import signal
import statistics
from collections.abc import Callable, Iterator

import pytest
from proxy import Proxy
from redis_proc import RedisProcess

FIGURES = os.environ.get("GUARD_FAULT_FIGURES")


def summary(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "min": v[0],
        "p50": statistics.median(v),
        "p99": v[min(len(v) - 1, int(len(v) * 0.99))],
        "max": v[-1],
    }


def record(name: str, data: object) -> None:
    """Add one figure (a dict or a list of samples) to the figures file, when asked for."""
    if isinstance(data, list):
        data = summary([float(x) for x in data])
    print(f"FIGURE {name}: {data}")
    if not FIGURES:
        return
    try:
        with open(FIGURES, encoding="utf-8") as f:
            all_ = json.load(f)
    except (OSError, ValueError):
        all_ = {}
    all_[name] = data
    with open(FIGURES, "w", encoding="utf-8") as f:
        json.dump(all_, f, indent=2, sort_keys=True)


@pytest.fixture
def server() -> Iterator[RedisProcess]:
    """A redis-server of this test alone: it may be stopped, killed and restarted."""
    s = RedisProcess().start()
    yield s
    if s.proc is not None and s.proc.poll() is None:
        os.kill(s.proc.pid, signal.SIGCONT)  # a test that failed while it was stopped
    s.cleanup()


@pytest.fixture
def make_proxy() -> Iterator[Callable[[int], Proxy]]:
    made: list[Proxy] = []

    def make(port: int, lifetime: float = 120.0) -> Proxy:
        p = Proxy(port, lifetime=lifetime).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
