"""The CLI through click's CliRunner (Redis mode and HTTP mode), config as code, and
`guard serve`'s re-apply after a store reset."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from clirun import run
from live import ADMIN_TOKEN, LiveServer
from redis_proc import RedisProcess

import guard
from guard.cli import main
from guard.config_file import parse

LIMITS = """
namespace: {ns}
max_concurrency: 100
groups:
  api: {{reserved: 20, members: [login, checkout]}}
  etl: {{max_concurrency: 10, members: [ingest]}}
functions:
  ingest: {{max_concurrency: 4, lease_ttl_seconds: 60}}
"""


@pytest.mark.parametrize("mode", ["redis_env", "http_env"])
def test_resource_commands(mode: str, request: pytest.FixtureRequest) -> None:
    env = request.getfixturevalue(mode)
    assert run(["namespaces", "set", "--max-concurrency", "50"], env).exit_code == 0
    assert json.loads(run(["namespaces", "get"], env).output)["max_concurrency"] == 50
    assert env["GUARD_NAMESPACE"] in run(["namespaces", "list"], env).output
    r = run(["groups", "put", "etl", "--max-concurrency", "5", "--members", "a,b"], env)
    assert r.exit_code == 0 and json.loads(r.output)["members"] == ["a", "b"]
    r = run(["groups", "patch", "etl", "--mode", "shadow"], env)
    assert json.loads(r.output)["mode"] == "shadow" and json.loads(r.output)["max_concurrency"] == 5
    assert "etl" in run(["groups", "list"], env).output
    assert json.loads(run(["groups", "get", "etl"], env).output)["name"] == "etl"
    r = run(
        ["functions", "put", "a", "--max-concurrency", "none", "--lease-ttl-seconds", "30"], env
    )
    assert json.loads(r.output)["lease_ttl_seconds"] == 30
    assert run(["functions", "patch", "a", "--on-unavailable", "closed"], env).exit_code == 0
    assert "closed" in run(["functions", "list"], env).output
    r = run(["groups", "put", "x", "--reserved", "60"], env)
    assert r.exit_code == 1 and "error:" in r.output  # 409: above the account max
    r = run(["functions", "put", "a", "--max-concurrency", "-3"], env)
    assert r.exit_code == 2
    assert run(["groups", "delete", "etl"], env).exit_code == 0
    assert run(["groups", "delete", "etl"], env).exit_code == 1
    assert run(["groups", "get", "etl"], env).exit_code == 1
    assert run(["functions", "delete", "a"], env).exit_code == 0


@pytest.mark.parametrize("mode", ["redis_env", "http_env"])
def test_usage_and_leases(mode: str, request: pytest.FixtureRequest, g: guard.Guard) -> None:
    env = request.getfixturevalue(mode)
    g.admin.put_group("etl", max_concurrency=3, reserved=1, members=["ingest"])
    lease = g.acquire("ingest", ttl=30)
    out = run(["usage"], env).output
    assert "IN USE / LIMIT" in out and "1 / 3" in out
    out = run(["leases", "list", "--function", "ingest"], env).output
    assert lease.lease_id in out
    assert lease.lease_id not in run(["leases", "list", "--function", "x"], env).output


@pytest.mark.parametrize("mode", ["redis_env", "http_env"])
def test_apply_dry_run_and_idempotent(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path, g: guard.Guard
) -> None:
    env = request.getfixturevalue(mode)
    f = tmp_path / "limits.yaml"
    f.write_text(LIMITS.format(ns=env["GUARD_NAMESPACE"]))
    r = run(["apply", "-f", str(f), "--dry-run"], env)
    assert r.exit_code == 0 and "+ group api" in r.output and "dry run" in r.output
    assert g.admin.get_group("api") is None  # nothing changed
    r = run(["apply", "-f", str(f)], env)
    assert r.exit_code == 0 and "change(s)" in r.output
    assert g.admin.get_group("api")["reserved"] == 20
    version = g.backend.client.hget(f"guard:{{{g.namespace}}}:cfg", "v")  # type: ignore[attr-defined]
    r = run(["apply", "-f", str(f)], env)
    assert "no changes" in r.output
    assert g.backend.client.hget(f"guard:{{{g.namespace}}}:cfg", "v") == version  # type: ignore[attr-defined]
    g.admin.put_function("extra", max_concurrency=1)
    r = run(["apply", "-f", str(f), "--dry-run"], env)
    assert "--prune would remove: function extra" in r.output  # kept without --prune
    assert "- function extra" in run(["apply", "-f", str(f), "--dry-run", "--prune"], env).output


def test_config_file_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(guard.UsageError) as ei:
        parse({"namespace": "n", "groups": {"etl": {"reserved": -1}}})
    assert ei.value.field == "groups.etl.reserved"
    with pytest.raises(guard.UsageError) as ei:
        parse({"namespaces": {"prod": {"functions": {"f": {"colour": 1}}}}})
    assert ei.value.field == "namespaces.prod.functions.f.colour"
    with pytest.raises(guard.ConflictError):
        parse({"namespace": "n", "max_concurrency": 1, "groups": {"a": {"reserved": 2}}})
    assert set(parse({"namespaces": {"a": {"groups": {}}, "b": {"max_concurrency": 1}}})) == {
        "a",
        "b",
    }
    f = tmp_path / "bad.yaml"
    f.write_text("groups: [")
    r = CliRunner().invoke(main, ["apply", "-f", str(f)], env={"GUARD_REDIS_URL": "redis://x"})
    assert r.exit_code == 2 and "not valid YAML" in r.output


def test_example_file_parses() -> None:
    from guard.config_file import load

    cfg = load(str(Path(__file__).parent.parent / "deploy" / "limits.example.yaml"))
    assert cfg["default"].groups["api"].reserved == 200


def test_no_target_is_a_usage_error() -> None:
    r = CliRunner().invoke(main, ["usage"], env={"GUARD_REDIS_URL": "", "GUARD_URL": ""})
    assert r.exit_code == 2 and "GUARD_URL" in r.output


@pytest.mark.slow
def test_serve_reapplies_config_after_store_reset(tmp_path: Path) -> None:
    """A Redis restart without persistence wipes the limits; guard serve puts them back."""
    ns = "reapply"
    f = tmp_path / "limits.yaml"
    f.write_text(textwrap.dedent(LIMITS.format(ns=ns)))
    redis = RedisProcess().start()
    server = LiveServer(
        redis.url, workers=1, args=("--config", str(f)), env={"GUARD_CONFIG_CHECK_SECONDS": "0.2"}
    )
    try:
        server.start()
        g = guard.Guard.from_url(redis.url, namespace=ns, timeout=2.0)
        assert g.admin.get_group("api")["reserved"] == 20
        g.admin.put_function("added-later", max_concurrency=1)  # an admin write is kept
        time.sleep(0.6)
        assert g.admin.get_function("added-later") is not None
        redis.restart()  # no persistence: every key is gone
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and g.admin.get_group("api") is None:
            time.sleep(0.1)
        assert g.admin.get_group("api")["reserved"] == 20
        assert "re-applied" in server.output()
        g.close()
    finally:
        server.stop()
        redis.cleanup()


@pytest.mark.slow
def test_serve_without_redis_url_uses_fakeredis_when_no_redis_server(tmp_path: Path) -> None:
    """fakeredis here on purpose: this is the fallback store for machines without
    redis-server, so the test hides redis-server from PATH and checks it still serves."""
    pytest.importorskip("lupa")
    import os
    import sys
    import urllib.request

    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(os.path.join(os.path.dirname(sys.executable), "guard"), bindir / "guard")
    server = LiveServer(None, workers=1, env={"PATH": str(bindir)})
    server.env.pop("GUARD_REDIS_URL", None)
    try:
        server.start()
        put = urllib.request.Request(
            f"{server.url}/v1/namespaces/demo",
            data=b'{"max_concurrency": 5}',
            method="PUT",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(put, timeout=5) as r:
            assert r.status == 200
        req = urllib.request.Request(
            f"{server.url}/v1/namespaces/demo/leases",
            data=b'{"function": "f"}',
            method="POST",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 201
        assert "fakeredis" in server.output()
    finally:
        server.stop()
