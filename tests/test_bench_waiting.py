"""The "waiting at scale" benchmark (bench/waiting.py, issue 18): the workload returns what the
report needs, against a real redis-server, and report.py renders it as a section of
docs/benchmarks.md (and skips it for results written before the workload was part of the run)."""

from __future__ import annotations

import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

import harness  # noqa: E402
import report  # noqa: E402
import waiting  # noqa: E402

FIELDS = {
    "pairs_per_s",
    "pairs_per_s_min",
    "pairs_per_s_max",
    "p99_wait_ms",
    "attempts_per_grant",
    "peak_holders",
    "errors",
    "rounds",
}


def _synthetic() -> dict[str, object]:
    def subj(pps: float, p99: float, att: float, peak: int) -> dict[str, float]:
        return {
            "pairs_per_s": pps,
            "pairs_per_s_min": pps - 10,
            "pairs_per_s_max": pps + 10,
            "p99_wait_ms": p99,
            "attempts_per_grant": att,
            "peak_holders": peak,
            "errors": 0,
            "rounds": 3,
        }

    return {
        "callers": 100,
        "seconds": 8.0,
        "rounds": 3,
        "limit": 5,
        "hold_ms": 20.0,
        "ideal_per_s": 250.0,
        "wait_s": 10.0,
        "peer_retry_ms": 10.0,
        "subjects": {
            "guard wait=": subj(225.0, 2512.0, 1.04, 5),
            "guard polling": subj(120.0, 9000.0, 6.5, 5),
            "redis-semaphore": subj(200.0, 4000.0, 25.25, 5),
            "bottleneck": subj(150.0, float("nan"), 1.0, 5),
        },
        "skipped": [],
    }


def test_report_renders_the_waiting_section() -> None:
    lines = report._waiting({"waiting": _synthetic()})
    text = "\n".join(lines)
    assert lines[0] == "## Waiting at scale: wait= beside polling, redis-semaphore, bottleneck"
    assert "| subject | pairs/s (median) |" in text
    assert "| guard wait= | 225 | 215-235 | 90% | 2,512 | 1.04 | 5 |" in text
    assert "| guard polling | 120 | 110-130 | 48% | 9,000 | 6.50 | 5 |" in text
    assert "| redis-semaphore | 200 | 190-210 | 80% | 4,000 | 25.25 | 5 |" in text
    assert "| bottleneck | 150 | 140-160 | 60% | n/a | 1.00 | 5 |" in text
    # what each subject does (from bench/waiting.py's docstring) and the ideal
    assert "100 callers" in text and "250" in text and "max 5" in text
    for what in ("wait=10", "retry_after", "tryAcquire", "maxConcurrent"):
        assert what in text, what


def test_report_skips_the_waiting_section_without_results() -> None:
    assert report._waiting({}) == []  # results.json written before the workload was in the run
    assert report._waiting({"waiting": {"subjects": {}}}) == []


def test_report_names_subjects_left_out() -> None:
    w = _synthetic()
    subjects = w["subjects"]
    assert isinstance(subjects, dict)
    del subjects["redis-semaphore"], subjects["bottleneck"]
    w["skipped"] = ["redis-semaphore", "bottleneck"]
    text = "\n".join(report._waiting({"waiting": w}))
    assert "| guard wait= |" in text and "| bottleneck |" not in text
    assert "Not measured in this run: redis-semaphore, bottleneck" in text


@pytest.mark.slow
def test_waiting_run_returns_what_the_report_needs() -> None:
    assert harness.node_modules_ready(), "bench/node_modules missing: npm ci --prefix bench"
    plan = waiting.WaitPlan(seconds=1.0, rounds=1, callers=20)
    with harness.redis_server() as server:  # private: the run leaves its keys behind
        got = waiting.run(plan, server)
    assert set(got["subjects"]) == set(waiting.SUBJECTS) and got["skipped"] == []
    assert got["limit"] == waiting.LIMIT and got["ideal_per_s"] == pytest.approx(250.0)
    assert (got["callers"], got["seconds"], got["rounds"]) == (20, 1.0, 1)
    for name, s in got["subjects"].items():
        assert set(s) >= FIELDS, (name, s)
        assert s["pairs_per_s"] > 0, (name, s)
        assert 1 <= s["peak_holders"] <= waiting.LIMIT, (name, s)
        assert s["attempts_per_grant"] >= 1.0, (name, s)
        assert s["p99_wait_ms"] == s["p99_wait_ms"], (name, s)  # not NaN
        assert s["errors"] == 0, (name, s)
    # renders from what the run returned
    text = "\n".join(report._waiting({"waiting": got}))
    for name in waiting.SUBJECTS:
        assert f"| {name} |" in text
