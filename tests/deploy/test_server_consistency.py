"""The deploy assets agree with the merged server, checked against the real thing: the
healthcheck commands of the Dockerfile, the compose file and the ECS task definition run
against a live `guard serve`; the limits file the compose stack mounts passes `guard apply
--dry-run` and applies over HTTP; the demo load generator drives the lease API of a live
server (201 / 429 / 204 / 404 as docs/http.md documents them) and its grants reach /metrics;
and every variable the assets document for the server container is one it reads."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from live import ADMIN_TOKEN, CLIENT_TOKEN
from prometheus_client.parser import text_string_to_metric_families

from guard.cli import main as guard_cli

REPO = Path(__file__).resolve().parents[2]
LIMITS = REPO / "deploy/limits.example.yaml"
LOADGEN = REPO / "deploy/demo/loadgen.py"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def healthcheck_commands(compose: dict[str, Any], tf_resources: Any) -> dict[str, list[str]]:
    """argv of the guard container's healthcheck in each asset (exec form, after CMD)."""
    text = (REPO / "Dockerfile").read_text()
    m = re.search(r"^HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])$", text, re.M)
    assert m, "Dockerfile HEALTHCHECK CMD [...] not found"
    docker = json.loads(m.group(1))
    test = compose["services"]["guard"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    td = tf_resources["aws_ecs_task_definition"]["this"]["container_definitions"]
    block = td[td.index("healthCheck") :]
    block = block[block.index("[") : block.index("]") + 1]
    ecs = [json.loads(s) for s in re.findall(r'"(?:\\.|[^"\\])*"', block)]
    assert ecs[0] == "CMD"
    return {"Dockerfile": docker, "docker-compose.yml": test[1:], "terraform": ecs[1:]}


def test_healthchecks_pass_against_a_live_server(
    compose: dict[str, Any], tf_resources: Any, live_server: str
) -> None:
    """Each asset's healthcheck command, run as the container would (python = this venv's),
    with the port moved to the live server's."""
    port = live_server.rsplit(":", 1)[1]
    for where, argv in healthcheck_commands(compose, tf_resources).items():
        assert argv[0] == "python", (where, argv)
        cmd = [
            sys.executable,
            *(a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in argv[1:]),
        ]
        assert any(f":{port}/" in a for a in cmd), (where, cmd)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        assert proc.returncode == 0, (where, shlex.join(cmd), proc.stderr)


def test_probe_paths_are_open_routes(tf_resources: Any, live_server: str) -> None:
    """The ALB health check and Prometheus scrape without a token; both answer 200."""
    alb = tf_resources["aws_lb_target_group"]
    paths = {
        tg["health_check"][0]["path"]
        if isinstance(tg["health_check"], list)
        else tg["health_check"]["path"]
        for tg in alb.values()
    }
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    [guard_job] = [j for j in prom["scrape_configs"] if j["job_name"] == "guard"]
    paths |= {guard_job.get("metrics_path", "/metrics"), "/readyz"}
    for path in sorted(paths):
        with urllib.request.urlopen(f"{live_server}{path}", timeout=5) as r:
            assert r.status == 200, path


def test_server_env_documented_by_the_assets_is_read(guard_serve_env: frozenset[str]) -> None:
    """Every GUARD_* name the Dockerfile (comments included), the Terraform variables and the
    module README's container-environment table mention is one `guard serve` reads."""
    texts = {
        "Dockerfile": (REPO / "Dockerfile").read_text(),
        "variables.tf": (REPO / "deploy/terraform/variables.tf").read_text(),
        "terraform README (container env)": "\n".join(
            ln
            for ln in (REPO / "deploy/terraform/README.md").read_text().splitlines()
            if ln.startswith(("| `GUARD", "| `PROMETHEUS", "| anything else"))
        ),
    }
    for where, text in texts.items():
        names = set(re.findall(r"\b((?:GUARD|PROMETHEUS)_[A-Z0-9_]+)\b", text))
        assert names, where
        assert names <= guard_serve_env, (where, sorted(names - guard_serve_env))


def test_loadgen_env_matches_compose(compose: dict[str, Any]) -> None:
    reads = set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', LOADGEN.read_text()))
    svc = compose["services"]["loadgen"]
    env = svc["environment"]
    assert set(env) <= reads, set(env) - reads
    assert svc["command"][-1] == "/demo/loadgen.py"
    # its token is the generated client token (test_compose checks the tokens service), its
    # namespace the one the mounted limits file configures
    assert env["GUARD_TOKEN_FILE"].endswith("/client.token")
    assert env["GUARD_URL"] == "http://guard:8000"
    assert env["GUARD_NAMESPACE"] == yaml.safe_load(LIMITS.read_text())["namespace"]


def test_limits_example_dry_run(redis_server: Any) -> None:
    """What the compose stack mounts as GUARD_CONFIG parses and diffs against a store."""
    res = CliRunner().invoke(
        guard_cli, ["--redis-url", redis_server.url, "apply", "-f", str(LIMITS), "--dry-run"]
    )
    assert res.exit_code == 0, res.output
    assert "namespace default:" in res.output and "dry run: nothing was changed" in res.output
    assert "+ group api:" in res.output and "+ function report-gen:" in res.output
    c = redis_server.client()
    try:
        assert not c.exists("guard:{default}:config"), "a dry run wrote the store"
    finally:
        c.close()


def value(text: str, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def run_loadgen(url: str, token: str, ns: str, tmp: Path, seconds: float) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUARD_", "LOADGEN_"))}
    env.update(
        {
            "GUARD_URL": url,
            "GUARD_TOKEN": token,
            "GUARD_NAMESPACE": ns,
            "LOADGEN_WORKERS": "8",
            "LOADGEN_SECONDS": str(seconds),
            "LOADGEN_HEARTBEAT": str(tmp / "alive"),
        }
    )
    proc = subprocess.run(
        [sys.executable, str(LOADGEN)],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 40,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_loadgen_drives_a_live_server(
    live_server: str, redis_server: Any, tmp_path: Path, ns: str
) -> None:
    """The compose stack in small: the limits file applied over HTTP (as an operator's
    `guard apply` does), then loadgen.py with a client token for 3 s; it exits 0 (leases
    granted, every reply documented), releases what it held, and /metrics counts its grants."""
    limits = tmp_path / "limits.yaml"
    limits.write_text(re.sub(r"(?m)^namespace: default$", f"namespace: {ns}", LIMITS.read_text()))
    res = CliRunner().invoke(
        guard_cli, ["--url", live_server, "--token", ADMIN_TOKEN, "apply", "-f", str(limits)]
    )
    assert res.exit_code == 0 and f"namespace {ns}:" in res.output, res.output

    rc, out = run_loadgen(live_server, CLIENT_TOKEN, ns, tmp_path, 3)
    assert rc == 0, out
    stats = dict(re.findall(r"(\w+)=(\d+)", out.strip().splitlines()[-1]))
    assert int(stats["granted"]) > 0 and int(stats["released"]) > 0, out
    assert stats["unexpected"] == "0", out
    assert (tmp_path / "alive").exists()

    with urllib.request.urlopen(f"{live_server}/metrics", timeout=5) as r:
        text = r.read().decode()
    granted = sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "guard_grants_total" and s.labels.get("namespace") == ns
    )
    assert granted == int(stats["granted"]), (granted, stats)
    # everything not abandoned on purpose was released (or had expired: 404 not-held)
    in_use = value(text, "guard_in_use", namespace=ns, scope="account")
    assert in_use is not None and in_use <= int(stats["abandoned"]), (in_use, stats)


def test_loadgen_fails_with_a_wrong_token(live_server: str, tmp_path: Path, ns: str) -> None:
    rc, out = run_loadgen(live_server, "not-a-token", ns, tmp_path, 1)
    assert rc == 1, out
    assert "HTTP 401" in out and "granted=0" in out, out


def test_terraform_exports_the_module_namespace(tf_resources: Any) -> None:
    """guard serve exports only namespaces an admin wrote plus GUARD_METRICS_NAMESPACES; the
    module's `namespace` must be on /metrics even when only leases were taken there."""
    td = tf_resources["aws_ecs_task_definition"]["this"]["container_definitions"]
    assert re.search(r"GUARD_METRICS_NAMESPACES\s*=\s*var\.namespace", td), td
