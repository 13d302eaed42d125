"""The Grafana dashboard (deploy/grafana/dashboards/guard.json) is valid JSON with unique
panel ids, uses the provisioned datasource, covers every metric family of
docs/http.md (directly or through a recording rule), has the panels operators need,
and every PromQL expression in it queries only contract families, our recording rules and
`up`. The metric-name extractor is itself tested so that the check cannot pass vacuously."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "deploy/grafana"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards/guard.json").read_text())


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def expressions(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        if var.get("type") == "query":
            exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


def test_extractor_finds_metric_names(metric_names: Callable[[str], set[str]]) -> None:
    cases = {
        'sum by (namespace, scope) (rate(guard_throttles_total{scope="group"}[5m]))': {
            "guard_throttles_total"
        },
        "histogram_quantile(0.95, sum by (le) (rate(guard_http_request_duration_seconds_bucket"
        "[$__rate_interval])))": {"guard_http_request_duration_seconds_bucket"},
        'guard_in_use / (guard_limit > 0) > 0.9 and on (namespace) up{job="guard"} == 0': {
            "guard_in_use",
            "guard_limit",
            "up",
        },
        'max(guard:utilization:ratio{namespace=~"$namespace"}) offset 5m': {
            "guard:utilization:ratio"
        },
        "label_values(guard_in_use, namespace)": {"guard_in_use"},
        "topk(15, max without (instance) (bogus_metric))": {"bogus_metric"},
        "sum(rate(guard_grants_total[1h:5m])) by (function) * 1e3": {"guard_grants_total"},
    }
    for expr, expected in cases.items():
        assert metric_names(expr) == expected, expr


def test_dashboard_basics(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"] == "guard"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= names
    for p in panels(dashboard):
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"] and p.get("description"), p["title"]
            assert p["gridPos"]["w"] <= 24


def test_dashboard_queries_only_allowed_metrics(
    dashboard: dict[str, Any],
    metric_names: Callable[[str], set[str]],
    allowed_metrics: set[str],
) -> None:
    exprs = expressions(dashboard)
    assert len(exprs) >= 15
    for expr in exprs:
        used = metric_names(expr)
        assert used, f"no metric in {expr!r}"
        assert used <= allowed_metrics, (expr, used - allowed_metrics)


def test_dashboard_covers_every_contract_family(
    dashboard: dict[str, Any],
    metric_names: Callable[[str], set[str]],
    contract_families: dict[str, str],
    recording_rules: dict[str, str],
) -> None:
    shown: set[str] = set()
    for expr in expressions(dashboard):
        for name in metric_names(expr):
            shown.add(name)
            if name in recording_rules:
                shown |= metric_names(recording_rules[name])
    shown_families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in shown}
    missing = set(contract_families) - shown_families
    assert not missing, f"dashboard never shows {missing}"
    assert "up" in shown


def test_dashboard_has_the_operator_panels(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(expressions(dashboard))
    for level in ("account", "group", "function"):
        assert f'guard_in_use{{scope="{level}"' in exprs, level
        assert f'guard_limit{{scope="{level}"' in exprs, level
    assert "histogram_quantile(0.95" in exprs and "histogram_quantile(0.99" in exprs
    titles = " ".join(p["title"].lower() for p in panels(dashboard))
    for word in ("throttles", "shadow", "grants", "expired", "fail-open", "store up", "latency"):
        assert word in titles, word


def test_provisioning(repo: Path) -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/guard.yml").read_text())
    [provider] = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    dash = json.loads((GRAFANA / "dashboards/guard.json").read_text())
    ds_var = next(v for v in dash["templating"]["list"] if v["name"] == "datasource")
    assert ds_var["query"] == "prometheus" and ds_var["current"]["value"] == source["uid"]


def test_every_queried_guard_series_is_really_exported(
    dashboard: dict[str, Any],
    metric_names: Callable[[str], set[str]],
    recording_rules: dict[str, str],
    exposition: str,
) -> None:
    """Every `guard_*` series the dashboard and the rule files query (recording-rule outputs
    and `up` aside) is a sample name in the live `guard serve`'s /metrics after traffic that
    touches every family — the contract table could be wrong; the server is what counts."""
    from prometheus_client.parser import text_string_to_metric_families

    exported = {s.name for fam in text_string_to_metric_families(exposition) for s in fam.samples}
    rules_dir = Path(__file__).resolve().parents[2] / "deploy/prometheus/rules"
    rule_exprs = [
        r["expr"]
        for f in sorted(rules_dir.glob("*.yml"))
        for grp in yaml.safe_load(f.read_text())["groups"]
        for r in grp["rules"]
    ]
    queried: dict[str, set[str]] = {}
    for where, exprs in (("dashboard", expressions(dashboard)), ("rules", rule_exprs)):
        for expr in exprs:
            for name in metric_names(expr):
                if name != "up" and name not in recording_rules:
                    queried.setdefault(name, set()).add(where)
    assert len(queried) >= 10 and all(n.startswith("guard_") for n in queried), queried
    assert "guard_http_request_duration_seconds_bucket" in queried
    missing = {n: sorted(w) for n, w in queried.items() if n not in exported}
    assert not missing, f"queried but not exported by /metrics: {missing}"
