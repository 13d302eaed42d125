"""The "keyed + rate limited decision" benchmark row (bench/): its guard subject configures what
the row claims (a key cap and a rate at every level), its drivers run against a real
redis-server, and the report renders the row apart from the uncontended tables."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from redis_proc import RedisProcess

import guard

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

import harness  # noqa: E402
import report  # noqa: E402
import subjects  # noqa: E402


def test_keyed_setup_sets_a_key_cap_and_a_rate_at_every_level(
    redis_server: RedisProcess, ns: str
) -> None:
    cfg = harness.BenchConfig(url=redis_server.url, key=ns, limit=1_000_000)
    subjects._guard_keyed_setup(cfg)
    g = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0)
    try:
        c = g.admin.config()
        fn = c.functions[subjects.GUARD_FUNCTION]
        grp = c.groups[subjects.GUARD_GROUP]
        assert c.rate_per_second == subjects.KEYED_RATE
        assert grp.rate_per_second == subjects.KEYED_RATE
        assert fn.rate_per_second == subjects.KEYED_RATE
        assert fn.key_rate_per_second == subjects.KEYED_RATE
        assert fn.key_max_concurrency == cfg.limit
        for i in range(50):  # never binding: every decision of the row is a grant
            g.acquire(subjects.GUARD_FUNCTION, key=f"tenant-{i % 7}").release()
    finally:
        g.close()


def test_report_renders_the_keyed_row_on_its_own() -> None:
    row = {
        "label": "rate-limiter-flexible [shared]",
        "workers": 16,
        "workload": "keyed",
        "pairs_per_s": 20000.0,
        "pairs_per_s_min": 18000.0,
        "pairs_per_s_max": 21000.0,
        "p50_us": 400.0,
        "p99_us": 4000.0,
        "cpu_us": 13.0,
        "script_us": 6.5,
        "calls": {"evalsha": 1.0, "incrby": 1.0, "pexpire": 1.0, "pttl": 1.0},
    }
    rep = {"rows": [row], "keyed_instructions": {"guard-keyed": 444983.0}}
    lines = report._keyed_rate(rep)
    text = "\n".join(lines)
    assert lines[0] == "## Keyed + rate limited decision"
    assert (
        "| rate-limiter-flexible [shared] | 16 | 20,000 | 18,000-21,000 | 400 | 4,000 | 13.0"
        in text
    )
    assert "| 4.00 |" in text  # commands per decision
    assert "| guard-keyed | acquire({key}) + release" in text and "444,983" in text
    assert report._uncontended_table([row])[2:] == []  # not among the uncontended rows
    assert report._keyed_rate({"rows": []}) == []


def _node_ready() -> bool:
    root = os.path.dirname(BENCH)
    built = os.path.exists(os.path.join(root, "clients", "node", "dist", "cjs", "index.js"))
    rlf = os.path.isdir(os.path.join(BENCH, "node_modules", "rate-limiter-flexible"))
    return built and rlf and shutil.which("node") is not None


@pytest.mark.slow
def test_keyed_drivers_decide_against_a_real_server(redis_server: RedisProcess, ns: str) -> None:
    # not a skip: `make test` builds the Node SDK and installs bench/node_modules first
    assert _node_ready(), "needs make node-build and npm ci --prefix bench (make test does both)"
    got = {}
    names = []
    try:
        for s in subjects.keyed_rate_subjects():
            if s.mode != "shared":
                continue
            names.append(f"{ns}-{len(names)}")
            cfg = harness.BenchConfig(url=redis_server.url, key=names[-1], limit=1_000_000)
            r = harness.run_node(s, cfg, redis_server.port, 2, 0.3, "keyed")
            got[s.name] = r
            assert r.pairs > 0 and r.refused == 0, (s.name, r)
            assert r.cost is not None and r.cost.calls.get("evalsha", 0) > 0
    finally:
        c = redis_server.client()
        for n in names:
            keys = [*c.scan_iter(match=f"guard:{{{n}}}:*"), *c.scan_iter(match=f"rlflx:{n}:*")]
            if keys:
                c.delete(*keys)
            c.srem("guard:namespaces", n)
        c.close()
    assert set(got) == {
        "guard Node SDK, key + rate",
        "guard Node SDK, no key, no rate",
        "rate-limiter-flexible",
    }
    # one EVALSHA per decision for rate-limiter-flexible, two (acquire, release) for guard
    assert got["rate-limiter-flexible"].cost.calls["evalsha"] == pytest.approx(1.0, abs=0.05)  # type: ignore[union-attr]
    assert got["guard Node SDK, key + rate"].cost.calls["evalsha"] == pytest.approx(2.0, abs=0.05)  # type: ignore[union-attr]
