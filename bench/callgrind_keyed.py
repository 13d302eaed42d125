"""Redis server instructions per decision (callgrind) for the "keyed + rate limited decision"
row: guard's Node SDK with a key and rates configured (an acquire+release pair), the same with
no key and no rate, guard with only a per-key rate (`guard-key-rate`: no concurrency limit, no
other level), and rate-limiter-flexible (one consume); then the same keyed guard and
rate-limiter-flexible when every decision is a refusal (`...-refused`: each key's rate spent in
the warm-up; guard's refusal is one acquire with no release). Each subject gets its own
redis-server under `valgrind --tool=callgrind` (bench/callgrind_cost.py's `start`, `collect`
and `instructions`); the namespace is set up as in bench/subjects.py, a Node driver
(bench/peers/decisions.mjs) runs a warm-up, then collection is switched on for exactly N serial
decisions.

    .venv/bin/python bench/callgrind_keyed.py [--decisions 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from callgrind_cost import collect, instructions, start
from harness import BENCH_DIR, BenchConfig
from subjects import KEYED_BURST, KEYED_RATE, KEYED_TENANTS, _guard_keyed_setup, _guard_setup


def _guard_key_rate_setup(cfg: BenchConfig) -> None:
    """The closest guard has to a plain rate limiter: one function with only a per-key rate
    (no concurrency limit, no other level), still an acquire+release pair per decision."""
    import guard

    g = guard.Guard.from_url(cfg.url, namespace=cfg.key, timeout=5)
    try:
        g.admin.put_function("bench", key_rate_per_second=KEYED_RATE, key_rate_burst=KEYED_BURST)
    finally:
        g.close()


SUBJECTS = (
    "guard-keyed",
    "guard",
    "guard-key-rate",
    "rate-limiter-flexible",
    "guard-keyed-refused",
    "rate-limiter-flexible-refused",
)
UNLIMITED = 1_000_000


def _guard_keyed_refusing_setup(cfg: BenchConfig) -> None:
    """As the keyed subject, with a per-key rate of one grant per 1,000 s (burst 1): after the
    warm-up every key is out of tokens, so each measured decision is a `rate:key` refusal —
    one acquire, nothing to release."""
    import guard

    _guard_keyed_setup(cfg)
    g = guard.Guard.from_url(cfg.url, namespace=cfg.key, timeout=5)
    try:
        g.admin.patch_function("bench", key_rate_per_second=0.001, key_rate_burst=1)
    finally:
        g.close()


def measure(subject: str, decisions: int, warm: int = 200) -> float:
    """Redis instructions per decision of `subject` (one of SUBJECTS)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start(tmp)
        driver = None
        try:
            cfg = BenchConfig(url=f"redis://127.0.0.1:{port}/0", key="kb", limit=UNLIMITED)
            if subject == "guard-keyed":
                _guard_keyed_setup(cfg)
            elif subject == "guard":
                _guard_setup(cfg)
            elif subject == "guard-key-rate":
                _guard_key_rate_setup(cfg)
            elif subject == "guard-keyed-refused":
                _guard_keyed_refusing_setup(cfg)
            refuse = subject.endswith("-refused")
            args = {"port": port, "subject": subject, "ns": cfg.key, "warm": warm, "refuse": refuse}
            args |= {"n": decisions, "keys": KEYED_TENANTS}
            driver = subprocess.Popen(
                ["node", os.path.join(BENCH_DIR, "peers", "decisions.mjs"), json.dumps(args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert driver.stdin is not None and driver.stdout is not None
            if driver.stdout.readline().strip() != "warm":
                raise RuntimeError(f"{subject}: the driver did not warm up")
            collect(proc.pid, True)
            driver.stdin.write("go\n")
            driver.stdin.flush()
            if driver.stdout.readline().strip() != "done":
                raise RuntimeError(f"{subject}: the driver failed")
            collect(proc.pid, False)
            driver.wait(60)
        finally:
            if driver is not None and driver.poll() is None:
                driver.kill()
                driver.wait()
            proc.terminate()
            proc.wait(60)
        return instructions(tmp) / decisions


def available() -> bool:
    """valgrind, the bench's node_modules and the built Node SDK are all there."""
    import shutil

    from subjects import keyed_rate_subjects

    ready = os.path.isdir(os.path.join(BENCH_DIR, "node_modules", "rate-limiter-flexible"))
    guard_built = any(s.driver == "guard_node.mjs" for s in keyed_rate_subjects())
    return ready and guard_built and shutil.which("valgrind") is not None


def measure_all(decisions: int) -> dict[str, float]:
    return {s: measure(s, decisions) for s in SUBJECTS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--subjects", default=",".join(SUBJECTS))
    a = ap.parse_args()
    res = {s: measure(s, a.decisions) for s in a.subjects.split(",")}
    print(json.dumps({"instructions_per_decision": res, "decisions": a.decisions}, indent=2))


if __name__ == "__main__":
    main()
