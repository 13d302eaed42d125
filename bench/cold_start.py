"""Cold start: the time from a fresh process's start to its first granted acquire (import or
require of the SDK, client construction, connecting, the script's first run), for the Python
SDK and the Node SDK side by side, interleaved, against one redis-server.

Each run is a new interpreter, so module loading is counted as a Lambda cold start pays it.
The clock starts just before the process is spawned (``time.perf_counter_ns`` in the parent)
and stops when the child prints that its first acquire returned; the child's own figure
(from its first line of code) is reported too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from harness import BENCH_DIR, median

ROOT = os.path.dirname(BENCH_DIR)
NODE_SDK = os.path.join(ROOT, "clients", "node", "dist", "cjs", "index.js")

PY_CHILD = """
import time; t0 = time.perf_counter()
import sys, guard
g = guard.Guard.from_url(sys.argv[1], namespace=sys.argv[2], timeout=5)
g.acquire("cold").release()
print(round((time.perf_counter() - t0) * 1e6), flush=True)
"""

NODE_CHILD = """
const t0 = process.hrtime.bigint();
const { Guard } = require(process.argv[1]);
const g = Guard.fromUrl(process.argv[2], { namespace: process.argv[3], timeoutMs: 5000 });
g.acquire("cold").then(async (l) => {
  await l.release();
  console.log(String((process.hrtime.bigint() - t0) / 1000n));
  await g.close();
});
"""


def node_ready() -> bool:
    return os.path.exists(NODE_SDK)


def _run(cmd: list[str]) -> tuple[float, float]:
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    wall = (time.perf_counter_ns() - t0) / 1000
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0 or not line.strip():
        raise RuntimeError(f"cold start child failed ({proc.returncode}): {err[-1000:]}")
    return wall, float(line)


def measure(url: str, runs: int = 10) -> dict[str, Any]:
    """Median (and min/max) µs to the first acquire, per SDK; runs interleaved."""
    ns = f"cold-{uuid.uuid4().hex[:8]}"  # never configured: no limits, one script run
    subjects = {"python SDK": [sys.executable, "-c", PY_CHILD, url, ns]}
    if node_ready():
        subjects["node SDK"] = ["node", "-e", NODE_CHILD, NODE_SDK, url, ns]
    walls: dict[str, list[float]] = {k: [] for k in subjects}
    inner: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(runs):
        for name, cmd in subjects.items():
            w, i = _run(cmd)
            walls[name].append(w)
            inner[name].append(i)
    return {
        name: {
            "runs": runs,
            "wall_us": median(walls[name]),
            "wall_min_us": min(walls[name]),
            "wall_max_us": max(walls[name]),
            "in_process_us": median(inner[name]),
        }
        for name in subjects
    }


if __name__ == "__main__":
    import harness

    with harness.redis_server() as server:
        runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
        print(json.dumps(measure(server.url, runs), indent=2))
