"""End to end: a real Prometheus (Debian's `prometheus` binary, unpacked into .tools/bin by
scripts/tools.sh) scrapes the session's live `guard serve --workers 3` every second with
guard's own rule files loaded, and its query API returns every metric family of
docs/http.md with the contract's labels, the recording rules' output, and
`up{job="guard"} == 1`. A missing binary fails the test; it is never skipped."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis_proc import free_port

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / "deploy/prometheus/rules").glob("*.yml"))
JOB = "guard"


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector result of `expr` (`[{"metric": {...}, "value": [t, "v"]}]`)."""
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]  # type: ignore[no-any-return]

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def prometheus_binary() -> str:
    path = REPO / ".tools/bin/prometheus"
    if not os.access(path, os.X_OK):
        subprocess.run([str(REPO / "scripts/tools.sh")], check=False, timeout=600)
    assert os.access(path, os.X_OK), "prometheus is missing: scripts/tools.sh unpacks it"
    return str(path)


@pytest.fixture(scope="module")
def prometheus(traffic: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    work = tmp_path_factory.mktemp("prometheus")
    target = urllib.parse.urlsplit(traffic.url).netloc
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = work / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=out,
            cwd=work,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"prometheus exited: {prom.output()}"
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"prometheus not ready: {prom.output()}"
            time.sleep(0.2)
        yield prom
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(prom: Prometheus, exprs: list[str], timeout: float = 45.0) -> dict[str, list[Any]]:
    """Poll until every expression returns a non-empty vector (bounded); the last results."""
    deadline = time.monotonic() + timeout
    while True:
        results = {e: prom.query(e) for e in exprs}
        missing = [e for e, r in results.items() if not r]
        if not missing:
            return results
        assert prom.proc.poll() is None, f"prometheus exited: {prom.output()}"
        if time.monotonic() > deadline:
            return results  # the assertions below name what never appeared
        time.sleep(0.5)


def labels(series: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in series["metric"].items() if k not in ("__name__", "job", "instance")}


def test_prometheus_scrapes_guard_and_evaluates_the_rules(
    prometheus: Prometheus, traffic: Any, contract_families: dict[str, str]
) -> None:
    ns = traffic.namespace
    n = f'namespace="{ns}"'
    # family -> (selector, the label sets the traffic must have produced)
    expected: dict[str, tuple[str, list[dict[str, str]]]] = {
        "guard_in_use": (
            f"guard_in_use{{{n}}}",
            [
                {"namespace": ns, "scope": "account"},
                {"namespace": ns, "scope": "group", "group": "etl"},
                {"namespace": ns, "scope": "function", "function": "login"},
            ],
        ),
        "guard_limit": (
            f"guard_limit{{{n}}}",
            [
                {"namespace": ns, "scope": "account"},
                {"namespace": ns, "scope": "group", "group": "etl"},
                {"namespace": ns, "scope": "function", "function": "capped"},
            ],
        ),
        "guard_reserved": (f"guard_reserved{{{n}}}", [{"namespace": ns, "group": "api"}]),
        "guard_grants_total": (
            f"guard_grants_total{{{n}}}",
            [{"namespace": ns, "function": f} for f in ("login", "ingest", "capped", "rep")],
        ),
        "guard_throttles_total": (
            f"guard_throttles_total{{{n}}}",
            [
                {"namespace": ns, "function": "capped", "scope": "function"},
                {"namespace": ns, "function": "ingest", "scope": "group", "group": "etl"},
                {"namespace": ns, "function": "login", "scope": "account", "group": "api"},
            ],
        ),
        "guard_shadow_throttles_total": (
            f"guard_shadow_throttles_total{{{n}}}",
            [{"namespace": ns, "function": "rep", "scope": "function"}],
        ),
        "guard_leases_expired_total": (
            f"guard_leases_expired_total{{{n}}}",
            [{"namespace": ns, "function": "short"}],
        ),
        "guard_unavailable_total": (
            f"guard_unavailable_total{{{n}}}",
            [{"namespace": ns, "function": "offline"}],
        ),
        "guard_waiting": (
            f"guard_waiting{{{n}}}",
            [{"namespace": ns, "function": "capped"}],
        ),
        "guard_waits_timed_out_total": (
            f"guard_waits_timed_out_total{{{n}}}",
            [{"namespace": ns, "function": "capped"}],
        ),
        "guard_wait_seconds": (
            f"guard_wait_seconds_count{{{n}}}",
            [{"namespace": ns, "function": "capped"}],
        ),
        "guard_override_limit": (
            f"guard_override_limit{{{n}}}",
            [{"namespace": ns, "scope": "group", "group": "etl"}],
        ),
        "guard_override_seconds_left": (
            f"guard_override_seconds_left{{{n}}}",
            [{"namespace": ns, "scope": "group", "group": "etl"}],
        ),
        "guard_store_up": (f'guard_store_up{{job="{JOB}"}}', [{}]),
        "guard_scrape_duration_seconds": (f'guard_scrape_duration_seconds{{job="{JOB}"}}', [{}]),
        "guard_http_request_duration_seconds": (
            f'guard_http_request_duration_seconds_count{{job="{JOB}",route="/metrics"}}',
            [{"method": "GET", "route": "/metrics", "status": "200"}],
        ),
    }
    assert set(expected) == set(contract_families), "a contract family is not checked here"
    ratio = f"guard:utilization:ratio{{{n}}}"
    up = f'up{{job="{JOB}"}}'
    results = wait_for(prometheus, [sel for sel, _ in expected.values()] + [ratio, up])

    for family, (selector, want) in expected.items():
        got = [labels(s) for s in results[selector]]
        assert got, f"{family}: Prometheus returned no series for {selector}"
        for w in want:
            assert w in got, f"{family}: no series labelled {w} in {got}"
    assert results[up][0]["value"][1] == "1"
    assert float(results[f'guard_store_up{{job="{JOB}"}}'][0]["value"][1]) == 1

    def value(selector: str) -> float:
        [series] = prometheus.query(selector)
        return float(series["value"][1])

    assert value(f'guard_throttles_total{{{n},scope="account",group="api"}}') == 1
    assert value(f'guard_unavailable_total{{{n},function="offline"}}') == 1
    assert value(f'guard_leases_expired_total{{{n},function="short"}}') == 1
    assert value(f'guard_in_use{{{n},scope="account"}}') == 5
    # the recording rule: account 5 in use of max 5; etl 1 of 1; capped 1 of 1
    util = {
        (
            s["metric"].get("scope"),
            s["metric"].get("group", ""),
            s["metric"].get("function", ""),
        ): float(s["value"][1])
        for s in results[ratio]
    }
    assert util[("account", "", "")] == 1.0
    assert util[("group", "etl", "")] == 1.0
    assert util[("function", "", "capped")] == 1.0
    # every loaded rule group is healthy (a rule that fails to evaluate reports an error)
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as r:
        groups = json.load(r)["data"]["groups"]
    assert {g["file"] for g in groups} == {str(p) for p in RULE_FILES}
    for grp in groups:
        for rule in grp["rules"]:
            assert rule["health"] in ("ok", "unknown"), (rule["name"], rule.get("lastError"))
