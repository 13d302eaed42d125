"""Keys and rates (issue 14) in ``guard apply`` files and the resource commands, over Redis
and over the HTTP API: the same field names as the admin documents, round trips byte for
byte, and a bad value named by its path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clirun import run
from redis_proc import RedisProcess
from test_cli_apply import snapshot

import guard

MODES = pytest.mark.parametrize("mode", ["redis_env", "http_env"])

FILE = """\
namespace: {ns}
max_concurrency: 100
rate_per_second: 50
rate_burst: 100
groups:
  tenants:
    max_concurrency: 40
    members: [ingest]
    key_max_concurrency: 5
    key_overrides: {{big-co: 20}}
    rate_per_second: 25.5
functions:
  ingest:
    max_concurrency: 30
    key_max_concurrency: 2
    key_overrides: {{acme: 10, tiny: 0}}
  public-api:
    key_rate_per_second: 10
    key_rate_burst: 20
    rate_per_second: 200
"""


@MODES
def test_apply_round_trips_keys_and_rates_byte_for_byte(
    mode: str,
    request: pytest.FixtureRequest,
    redis_server: RedisProcess,
    g: guard.Guard,
    tmp_path: Path,
) -> None:
    env = request.getfixturevalue(mode)
    f = tmp_path / "limits.yaml"
    f.write_text(FILE.format(ns=g.namespace))
    r = run(["apply", "-f", str(f), "--dry-run"], env)
    assert r.exit_code == 0, r.output
    assert "~ rate_per_second: null -> 50" in r.output
    r = run(["apply", "-f", str(f)], env)
    assert r.exit_code == 0, r.output
    a = g.admin
    assert a.get_namespace() == {
        "name": g.namespace,
        "max_concurrency": 100,
        "rate_per_second": 50,
        "rate_burst": 100,
    }
    grp = a.get_group("tenants")
    assert grp is not None and grp["key_overrides"] == {"big-co": 20}
    assert grp["rate_per_second"] == 25.5 and grp["key_max_concurrency"] == 5
    fn = a.get_function("public-api")
    assert fn is not None and (fn["key_rate_per_second"], fn["key_rate_burst"]) == (10, 20)
    before = snapshot(redis_server, g.namespace)
    r = run(["apply", "-f", str(f)], env)  # the same file again: nothing to write
    assert r.exit_code == 0 and "no changes" in r.output, r.output
    assert snapshot(redis_server, g.namespace) == before
    r = run(["apply", "-f", str(f), "--prune"], env)
    assert "no changes" in r.output, r.output
    assert snapshot(redis_server, g.namespace) == before


@MODES
def test_a_file_without_the_rate_keeps_the_stored_one(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard, tmp_path: Path
) -> None:
    env = request.getfixturevalue(mode)
    g.admin.set_namespace(max_concurrency=10, rate_per_second=5, rate_burst=7)
    f = tmp_path / "limits.yaml"
    f.write_text(f"namespace: {g.namespace}\nmax_concurrency: 20\n")
    assert run(["apply", "-f", str(f)], env).exit_code == 0
    assert g.admin.get_namespace()["rate_per_second"] == 5
    r = run(["apply", "-f", str(f), "--prune", "--dry-run"], env)
    assert "~ rate_per_second: 5 -> null" in r.output and "~ rate_burst: 7 -> null" in r.output


@MODES
@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("rate_per_second: 0\n", "rate_per_second"),
        ("rate_burst: 3\n", "rate_burst"),
        ("functions:\n  f: {{key_rate_burst: 3}}\n", "functions.f.key_rate_burst"),
        ("functions:\n  f: {{key_overrides: {{a b: 1}}}}\n", "functions.f.key_overrides"),
        ("groups:\n  g: {{key_max_concurrency: -1}}\n", "groups.g.key_max_concurrency"),
        ("groups:\n  g: {{key_rate_per_second: 1}}\n", "groups.g.key_rate_per_second"),
    ],
)
def test_a_bad_field_is_named_by_its_path_and_changes_nothing(
    mode: str,
    text: str,
    field: str,
    request: pytest.FixtureRequest,
    redis_server: RedisProcess,
    g: guard.Guard,
    tmp_path: Path,
) -> None:
    env = request.getfixturevalue(mode)
    g.admin.set_namespace(max_concurrency=10)
    f = tmp_path / "limits.yaml"
    f.write_text(f"namespace: {g.namespace}\n" + text.format())
    before = snapshot(redis_server, g.namespace)
    r = run(["apply", "-f", str(f)], env)
    assert r.exit_code == 2 and field in r.output, r.output
    assert snapshot(redis_server, g.namespace) == before


@MODES
def test_resource_commands_carry_the_fields(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard
) -> None:
    env = request.getfixturevalue(mode)
    r = run(
        [
            "functions",
            "set",
            "api",
            "--key-max-concurrency",
            "3",
            "--key-overrides",
            "acme=10,tiny=0",
            "--rate-per-second",
            "100",
            "--rate-burst",
            "150",
            "--key-rate-per-second",
            "2.5",
            "--key-rate-burst",
            "5",
        ],
        env,
    )
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.output)
    assert doc["key_overrides"] == {"acme": 10, "tiny": 0}
    assert (doc["rate_per_second"], doc["rate_burst"]) == (100, 150)
    assert (doc["key_rate_per_second"], doc["key_rate_burst"]) == (2.5, 5)
    got = json.loads(run(["functions", "get", "api", "--json"], env).output)
    assert got == doc
    # set changes only what it names; 'none' clears
    r = run(["functions", "set", "api", "--key-rate-per-second", "none"], env)
    assert r.exit_code == 2 and "key_rate_burst" in r.output  # a burst needs its rate
    r = run(
        ["functions", "set", "api", "--key-rate-per-second", "none", "--key-rate-burst", "none"],
        env,
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert "key_rate_per_second" not in doc and doc["key_max_concurrency"] == 3
    r = run(["functions", "patch", "api", "--key-overrides", '{"acme": 4}'], env)
    assert json.loads(r.output)["key_overrides"] == {"acme": 4}
    r = run(["groups", "put", "t", "--members", "api", "--key-max-concurrency", "2"], env)
    assert r.exit_code == 0 and json.loads(r.output)["key_max_concurrency"] == 2, r.output
    r = run(["groups", "set", "t", "--rate-per-second", "x"], env)
    assert r.exit_code == 2 and "--rate-per-second" in r.output
    r = run(["functions", "set", "api", "--key-overrides", "acme"], env)
    assert r.exit_code == 2 and "--key-overrides" in r.output
    # namespaces set: the account rate, keeping the max
    assert run(["namespaces", "set", "--max-concurrency", "50"], env).exit_code == 0
    r = run(["namespaces", "set", "--rate-per-second", "20", "--rate-burst", "40"], env)
    assert json.loads(r.output) == {
        "name": g.namespace,
        "max_concurrency": 50,
        "rate_per_second": 20,
        "rate_burst": 40,
    }
    r = run(["namespaces", "set", "--rate-per-second", "none"], env)
    assert json.loads(r.output) == {"name": g.namespace, "max_concurrency": 50}
    assert run(["namespaces", "set"], env).exit_code == 2


@MODES
def test_keys_command_lists_the_top_keys(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard
) -> None:
    env = request.getfixturevalue(mode)
    g.admin.put_function("ingest", key_max_concurrency=3, key_overrides={"acme": 5})
    held = [g.acquire("ingest", key="acme", ttl=30) for _ in range(2)]
    held.append(g.acquire("ingest", key="beta", ttl=30))
    r = run(["functions", "keys", "ingest", "--top", "1"], env)
    assert r.exit_code == 0, r.output
    assert r.output.split() == ["KEY", "IN_USE", "MAX", "acme", "2", "5"]
    doc = json.loads(run(["functions", "keys", "ingest", "--json"], env).output)
    assert doc == g.admin.key_usage("function", "ingest", 10)
    assert run(["functions", "keys", "ingest", "--top", "0"], env).exit_code == 2
    for lease in held:
        lease.release()
