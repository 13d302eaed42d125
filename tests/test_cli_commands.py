"""The everyday CLI (issue 12, item 8): set merges and put says what it reset, --version,
--json on every read command, readable lease times, releasing a stuck lease, help on every
command, one-line errors for a missing AWS region and a busy port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import click
import pytest
from click.testing import CliRunner
from clirun import run
from redis_proc import RedisProcess, free_port

import guard
from guard.cli import main

MODES = pytest.mark.parametrize("mode", ["redis_env", "http_env"])


@MODES
def test_set_changes_only_the_options_given(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard
) -> None:
    env = request.getfixturevalue(mode)
    r = run(["functions", "set", "f", "--max-concurrency", "5"], env)  # creates
    assert r.exit_code == 0 and json.loads(r.stdout)["max_concurrency"] == 5
    r = run(["functions", "set", "f", "--mode", "shadow"], env)  # the command, merged
    assert r.exit_code == 0
    assert g.admin.get_function("f")["max_concurrency"] == 5
    assert g.admin.get_function("f")["mode"] == "shadow"
    r = run(["groups", "set", "etl", "--members", "f"], env)
    r = run(["groups", "set", "etl", "--max-concurrency", "3"], env)
    assert g.admin.get_group("etl")["members"] == ["f"]


@MODES
def test_put_replaces_and_says_what_it_reset(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard
) -> None:
    env = request.getfixturevalue(mode)
    g.admin.put_function("f", max_concurrency=5, lease_ttl_seconds=60)
    r = run(["functions", "put", "f", "--mode", "shadow"], env)
    assert r.exit_code == 0
    assert g.admin.get_function("f")["max_concurrency"] is None  # put replaces, as documented
    assert "put replaced function f" in r.stderr
    assert "max_concurrency 5 -> null" in r.stderr and "lease_ttl_seconds 60.0 -> 900.0" in r.stderr
    assert "set" in r.stderr  # points at the merging verb
    assert json.loads(r.stdout)["mode"] == "shadow"
    helptext = run(["functions", "put", "--help"], env).output
    assert "Replace" in helptext and "default" in helptext
    assert "only the options given" in run(["functions", "set", "--help"], env).output


def test_version() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and guard.__version__ in r.output and "guard-concurrency" in r.output


READS = [
    ["namespaces", "list"],
    ["namespaces", "get"],
    ["groups", "list"],
    ["groups", "get", "etl"],
    ["functions", "list"],
    ["functions", "get", "f"],
    ["leases", "list"],
    ["usage"],
]


@MODES
def test_every_read_command_takes_json(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard
) -> None:
    env = request.getfixturevalue(mode)
    g.admin.set_namespace(max_concurrency=10)
    g.admin.put_group("etl", max_concurrency=3, members=["f"])
    g.admin.put_function("f", max_concurrency=2)
    lease = g.acquire("f", ttl=30)
    docs = {}
    for args in READS:
        r = run([*args, "--json"], env)
        assert r.exit_code == 0, (args, r.output)
        docs[" ".join(args)] = json.loads(r.stdout)
    assert g.namespace in docs["namespaces list"]["namespaces"]
    assert docs["groups list"]["groups"][0]["name"] == "etl"
    assert docs["functions list"]["functions"][0]["max_concurrency"] == 2
    assert docs["leases list"]["leases"][0]["lease_id"] == lease.lease_id
    assert docs["usage"]["functions"]["f"]["in_use"] == 1
    lease.release()


@MODES
def test_leases_list_reads_like_times_and_a_stuck_lease_can_be_released(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard
) -> None:
    env = request.getfixturevalue(mode)
    g.admin.put_function("f", max_concurrency=1)
    lease = g.acquire("f", ttl=120)
    out = run(["leases", "list"], env).stdout
    assert "EXPIRES" in out and "GRANTED" in out
    row = next(line for line in out.splitlines() if lease.lease_id in line)
    assert "in 1m" in row or "in 2m" in row or "in 119s" in row, row  # relative, not epoch
    assert time.strftime("%Y-%m-%d", time.gmtime()) in row and "Z" in row
    assert f"{lease.expires_at:.3f}" not in row
    r = run(["leases", "release", lease.lease_id], env)
    assert r.exit_code == 0 and f"released lease {lease.lease_id}" in r.output
    assert g.admin.usage()["functions"]["f"]["in_use"] == 0
    r = run(["leases", "release", lease.lease_id], env)
    assert r.exit_code == 1 and "not held" in r.output
    r = run(["leases", "release", "not-a-lease"], env)
    assert r.exit_code == 2 and "lease_id" in r.output


def commands(cmd: click.Command, path: str = "guard") -> list[tuple[str, click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out += commands(sub, f"{path} {name}")
    return out


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, cmd in commands(main):
        if not (cmd.help or "").strip():
            missing.append(path)
        for p in cmd.params:
            if isinstance(p, click.Option) and not (p.help or "").strip():
                missing.append(f"{path} {p.opts[0]}")
    assert not missing, missing
    assert len(commands(main)) > 20


def test_sync_aws_without_a_region_is_one_line(
    redis_env: dict[str, Any], g: guard.Guard, tmp_path: Any
) -> None:
    g.admin.put_group("api", selector={"tags": {"team": "web"}})
    env = {
        **redis_env,
        "AWS_REGION": None,
        "AWS_DEFAULT_REGION": None,
        "AWS_PROFILE": None,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    r = CliRunner().invoke(main, ["sync-aws"], env=env)
    assert r.exit_code == 1, r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output, r.output
    assert "region" in r.output and "AWS_REGION" in r.output


def _serve(port: int, redis_url: str) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "guard")
    env = {**os.environ, "GUARD_REDIS_URL": redis_url, "GUARD_LOG_LEVEL": "warning"}
    for k in ("GUARD_ADMIN_TOKENS", "GUARD_CLIENT_TOKENS", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(k, None)
    return subprocess.run(
        [exe, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_on_a_busy_port_is_one_clear_line(redis_server: RedisProcess) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        port = s.getsockname()[1]
        start = time.monotonic()
        p = _serve(port, redis_server.url)
    took = time.monotonic() - start
    assert p.returncode != 0
    assert "serving on" not in p.stderr  # never claimed before the port was bound
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot listen on 127.0.0.1:{port}: address already in use"], p.stderr
    assert "Traceback" not in p.stderr and "Retrying" not in p.stderr
    assert took < 10  # not gunicorn's five retries


def test_serve_says_serving_on_once_bound(redis_server: RedisProcess) -> None:
    from live import LiveServer

    server = LiveServer(redis_server.url, workers=1, env={"GUARD_LOG_LEVEL": "info"})
    try:
        out = server.start().output()
        listening = out.index("Listening at: http://127.0.0.1")  # gunicorn, after bind()
        assert out.index(f"guard: serving on {server.url}") > listening, out
    finally:
        server.stop()
