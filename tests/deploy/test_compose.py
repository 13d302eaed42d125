"""docker-compose.yml is a working stack on paper: every service is health-checked, every
dependency waits for health, every bind-mounted file and the build context exist, guard gets
only environment variables it reads, and the pieces point at each other (guard's config
mount, Prometheus targets, Grafana provisioning paths). Also checks deploy/limits.example.yaml
against DESIGN.md's concepts and the demo load generator compiles."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

REQUIRED = {"redis", "guard", "prometheus", "grafana", "redis_exporter"}


@pytest.fixture(scope="module")
def compose(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host source, container target) of every bind mount of a service."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if parts[0].startswith((".", "/")):
                out.append((parts[0], parts[1]))
        elif v.get("type") == "bind":
            out.append((v["source"], v["target"]))
    return out


def test_required_services_exist(services: dict[str, Any]) -> None:
    assert set(services) >= REQUIRED


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        hc = svc.get("healthcheck")
        assert hc and hc.get("test"), f"{name} has no healthcheck"
        assert not hc.get("disable"), name
        assert hc["test"][0] in ("CMD", "CMD-SHELL"), name


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use the long depends_on syntax with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert services[dep].get("healthcheck"), f"{name} waits on {dep}, which has none"


def test_redis_is_redis7_with_aof_and_ping_check(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert redis["image"].split(":")[1].startswith("7")
    cmd = redis["command"]
    cmd = " ".join(cmd) if isinstance(cmd, list) else cmd
    assert "--appendonly yes" in cmd
    assert redis["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert any(":/data" in v for v in redis["volumes"]), "AOF must live on a volume"


def test_guard_service(services: dict[str, Any], repo: Path, guard_serve_env: frozenset) -> None:
    guard = services["guard"]
    assert guard["build"] in (".", {"context": "."})
    assert (repo / "Dockerfile").is_file()
    assert guard["depends_on"]["redis"]["condition"] == "service_healthy"
    assert any(str(p).split(":")[-1] == "8000" for p in guard["ports"])
    env = env_of(guard)
    unknown = set(env) - guard_serve_env
    assert not unknown, f"guard does not read {unknown}"
    assert env["GUARD_REDIS_URL"].startswith("redis://redis:")
    # the limits file is mounted where GUARD_CONFIG points
    mounts = dict((target, src) for src, target in bind_mounts(guard))
    assert mounts.get(env["GUARD_CONFIG"]) == "./deploy/limits.example.yaml"
    assert "/healthz" in " ".join(guard["healthcheck"]["test"])


def test_bind_mount_sources_and_build_contexts_exist(services: dict[str, Any], repo: Path) -> None:
    for name, svc in services.items():
        for src, _ in bind_mounts(svc):
            assert (repo / src).exists(), f"{name} mounts missing {src}"
        build = svc.get("build")
        if build is not None:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (repo / ctx / (dockerfile or "Dockerfile")).is_file(), name


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for v in svc.get("volumes") or []:
            if isinstance(v, str) and not v.startswith((".", "/")):
                assert v.split(":")[0] in declared, f"{name}: volume {v} not declared"


def test_prometheus_scrapes_the_compose_services(services: dict[str, Any], repo: Path) -> None:
    prom = services["prometheus"]
    mounts = {target: src for src, target in bind_mounts(prom)}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/rules"] == "./deploy/prometheus/rules"
    cfg = yaml.safe_load((repo / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in cfg["scrape_configs"]
    }
    assert targets["guard"] == ["guard:8000"]
    assert any(t.split(":")[0] == "redis_exporter" for t in targets["redis"])
    for rule_file in cfg["rule_files"]:
        assert (repo / "deploy/prometheus" / rule_file).is_file(), rule_file
    assert services["redis_exporter"]["image"].startswith("oliver006/redis_exporter")
    assert env_of(services["redis_exporter"])["REDIS_ADDR"].startswith("redis://redis:")


def test_grafana_provisioning_matches_mounts(services: dict[str, Any], repo: Path) -> None:
    grafana = services["grafana"]
    mounts = {target: src for src, target in bind_mounts(grafana)}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = yaml.safe_load(
        (repo / "deploy/grafana/provisioning/dashboards/guard.yml").read_text()
    )["providers"][0]
    dash_dir = provider["options"]["path"]
    assert mounts[dash_dir] == "./deploy/grafana/dashboards"
    assert (repo / "deploy/grafana/dashboards/guard.json").is_file()
    home = env_of(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home is None or home == f"{dash_dir}/guard.json"
    ds = yaml.safe_load(
        (repo / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"


def test_loadgen_script_compiles_and_uses_the_lease_api(
    services: dict[str, Any], repo: Path
) -> None:
    loadgen = services["loadgen"]
    [(src, target)] = bind_mounts(loadgen)
    assert target in loadgen["command"]
    source = (repo / src).read_text()
    ast.parse(source)
    assert "/v1/namespaces/" in source and '"DELETE"' in source
    assert loadgen["depends_on"]["guard"]["condition"] == "service_healthy"
    token = env_of(loadgen)["GUARD_TOKEN"]
    clients = env_of(services["guard"])["GUARD_CLIENT_TOKENS"]
    assert token.split(":-")[-1] == clients.split(":-")[-1], "demo token must be a client token"


# ---- limits.example.yaml ---------------------------------------------------------------------

NAMESPACE_FIELDS = {"namespace", "max_concurrency", "groups", "functions"}
GROUP_FIELDS = {"max_concurrency", "reserved", "members", "selector", "mode"}
FUNCTION_FIELDS = {"max_concurrency", "lease_ttl_seconds", "on_unavailable", "mode"}


def check_namespace(ns: dict[str, Any]) -> None:
    assert set(ns) <= NAMESPACE_FIELDS, set(ns) - NAMESPACE_FIELDS
    account = ns.get("max_concurrency")
    assert account is None or (isinstance(account, int) and account >= 0)
    reserved_in: dict[str, str] = {}
    total_reserved = 0
    for name, group in (ns.get("groups") or {}).items():
        assert set(group) <= GROUP_FIELDS, (name, set(group) - GROUP_FIELDS)
        reserved = group.get("reserved", 0)
        assert isinstance(reserved, int) and reserved >= 0
        total_reserved += reserved
        assert all(isinstance(m, str) for m in group.get("members", []))
        if reserved > 0:
            for member in group.get("members", []):
                assert member not in reserved_in, f"{member} in two reserved groups"
                reserved_in[member] = name
        assert group.get("mode", "enforce") in ("enforce", "shadow")
    if account is not None:
        assert total_reserved <= account, "sum of reserved exceeds the account max"
    for name, fn in (ns.get("functions") or {}).items():
        assert set(fn) <= FUNCTION_FIELDS, (name, set(fn) - FUNCTION_FIELDS)
        assert fn.get("on_unavailable", "open") in ("open", "closed")
        assert fn.get("mode", "enforce") in ("enforce", "shadow")
        ttl = fn.get("lease_ttl_seconds")
        assert ttl is None or ttl > 0


def test_limits_example_follows_the_concepts_table(repo: Path) -> None:
    doc = yaml.safe_load((repo / "deploy/limits.example.yaml").read_text())
    if "namespaces" in doc:
        for ns in doc["namespaces"].values():
            check_namespace(ns)
    else:
        check_namespace(doc)
        assert doc["namespace"] == "default"
        assert doc["groups"]["api"]["reserved"] > 0


def test_limits_checker_rejects_bad_files() -> None:
    with pytest.raises(AssertionError):
        check_namespace({"max_concurrency": 10, "groups": {"a": {"reserved": 20}}})
    with pytest.raises(AssertionError):
        check_namespace({"functions": {"f": {"max": 3}}})
