"""Prometheus assets are valid to Prometheus itself: `promtool check rules` on both rule
files, `promtool test rules` on the unit tests (every alert shown firing and not firing), and
`promtool check config` on prometheus.yml with its rule files. Rules may only query metric
families from docs/http.md, our recording rules and `up`. promtool comes from
scripts/tools.sh; its absence fails these tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PROM = Path(__file__).resolve().parents[2] / "deploy/prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
REQUIRED_ALERTS = {
    "GuardProtectedGroupThrottled",
    "GuardUsageNearLimit",
    "GuardLeasesExpiring",
    "GuardStoreDown",
    "GuardTargetDown",
    "GuardFailOpenRuns",
}


def run(cmd: list[str], cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def all_rules() -> list[dict[str, Any]]:
    return [r for f in RULE_FILES for g in load(f)["groups"] for r in g["rules"]]


def test_rule_and_test_files_exist() -> None:
    assert {p.name for p in RULE_FILES} == {"guard-alerts.yml", "guard-recording.yml"}
    assert TEST_FILES


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    proc = run([promtool, "check", "rules", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules(promtool: str) -> None:
    proc = run([promtool, "test", "rules", *(str(p) for p in TEST_FILES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(TEST_FILES)


def test_promtool_test_rules_detects_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """Guards against unit tests that pass vacuously: flip one expectation, expect failure."""
    src = PROM / "tests/guard-alerts.test.yml"
    doc = load(src)
    doc["rule_files"] = [str((src.parent / f).resolve()) for f in doc["rule_files"]]
    for case in doc["tests"]:
        for art in case.get("alert_rule_test", []):
            if art["exp_alerts"]:
                art["exp_alerts"] = []
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(doc))
    proc = run([promtool, "test", "rules", str(broken)], cwd=tmp_path)
    assert proc.returncode != 0


def test_promtool_check_config(promtool: str, tmp_path: Path) -> None:
    """In place (rule paths resolve relative to the file), and from a copy, as Prometheus
    sees it in the compose container with rules/ beside it."""
    proc = run([promtool, "check", "config", "prometheus.yml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    copy = tmp_path / "etc"
    (copy / "rules").mkdir(parents=True)
    (copy / "prometheus.yml").write_text((PROM / "prometheus.yml").read_text())
    for f in RULE_FILES:
        (copy / "rules" / f.name).write_text(f.read_text())
    proc = run([promtool, "check", "config", "prometheus.yml"], cwd=copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_required_alerts_exist_with_severity_and_summary() -> None:
    alerts = {r["alert"]: r for r in all_rules() if "alert" in r}
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    assert "guard_reserved > 0" in alerts["GuardProtectedGroupThrottled"]["expr"]
    assert "0.9" in alerts["GuardUsageNearLimit"]["expr"]
    assert "guard_store_up == 0" in alerts["GuardStoreDown"]["expr"]
    assert 'up{job="guard"} == 0' in alerts["GuardTargetDown"]["expr"]
    assert "increase(guard_unavailable_total" in alerts["GuardFailOpenRuns"]["expr"]
    assert "rate(guard_leases_expired_total" in alerts["GuardLeasesExpiring"]["expr"]


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    alerts = {r["alert"] for r in all_rules() if "alert" in r}
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in load(path)["tests"]:
            for art in case.get("alert_rule_test", []):
                (fired if art["exp_alerts"] else quiet).add(art["alertname"])
    assert alerts <= fired, f"never shown firing: {alerts - fired}"
    assert alerts <= quiet, f"never shown quiet: {alerts - quiet}"


def test_every_recording_rule_is_unit_tested(recording_rules: dict[str, str]) -> None:
    tested = {
        t["expr"]
        for path in TEST_FILES
        for case in load(path)["tests"]
        for t in case.get("promql_expr_test", [])
    }
    assert set(recording_rules) <= tested, set(recording_rules) - tested


def test_rules_query_only_contract_metrics(
    metric_names: Callable[[str], set[str]], allowed_metrics: set[str]
) -> None:
    for rule in all_rules():
        used = metric_names(rule["expr"])
        assert used, rule
        assert used <= allowed_metrics, (
            rule.get("alert") or rule.get("record"),
            used - allowed_metrics,
        )


def test_recording_rule_names_follow_convention(recording_rules: dict[str, str]) -> None:
    for name in recording_rules:
        assert name.startswith("guard:") and name.count(":") == 2, name


def test_tools_script_is_quiet_and_fast_when_done(promtool: str, repo: Path) -> None:
    """scripts/tools.sh runs before every `make test`: once promtool is there it must exit 0
    at once and print nothing."""
    proc = subprocess.run(
        [str(repo / "scripts/tools.sh")], capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    version = run([promtool, "--version"])
    assert version.returncode == 0 and "promtool" in (version.stdout + version.stderr)
