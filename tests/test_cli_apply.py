"""``guard apply`` never removes what a file does not list unless told to (issue 12, item 2):
an empty or namespace-less file is an error that leaves the store byte for byte unchanged,
and removing unlisted groups and functions needs ``--prune``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clirun import run
from redis_proc import RedisProcess

import guard
from guard.config_file import load
from guard.server.serve import ConfigKeeper
from guard.store import RedisStore


def snapshot(redis_server: RedisProcess, ns: str) -> dict[bytes, Any]:
    """Every key of the namespace, and the namespace registry, each with its serialized value
    (DUMP) and whether it expires: the store byte for byte. (Other tests' namespaces on the
    session server are left out: their TTLs tick.)"""
    c = redis_server.client()
    try:
        names = [*sorted(c.scan_iter(match=f"guard:{{{ns}}}:*")), b"guard:namespaces"]
        return {k: (c.dump(k), c.pttl(k) if c.pttl(k) < 0 else "expires") for k in names}
    finally:
        c.close()


def configured(g: guard.Guard) -> None:
    g.admin.set_namespace(max_concurrency=100)
    g.admin.put_group("etl", max_concurrency=10, reserved=5, members=["ingest"])
    g.admin.put_function("ingest", max_concurrency=4)
    g.admin.put_function("report", max_concurrency=2)


EMPTY_FILES = {
    "empty": "",
    "blank lines": "\n\n   \n",
    "comments only": "# limits\n# nothing yet\n",
    "namespace only": "namespace: {ns}\n",
    "no namespace": "functions:\n  ingest: {{max_concurrency: 1}}\n",
    "empty namespaces": "namespaces: {{}}\n",
    "namespace with nothing": "namespaces:\n  {ns}: {{}}\n",
}


@pytest.mark.parametrize("mode", ["redis_env", "http_env"])
@pytest.mark.parametrize("name", list(EMPTY_FILES))
def test_an_empty_file_is_an_error_and_changes_nothing(
    mode: str,
    name: str,
    request: pytest.FixtureRequest,
    redis_server: RedisProcess,
    g: guard.Guard,
    tmp_path: Path,
) -> None:
    env = request.getfixturevalue(mode)
    configured(g)
    f = tmp_path / "limits.yaml"
    f.write_text(EMPTY_FILES[name].format(ns=g.namespace))
    before = snapshot(redis_server, g.namespace)
    assert len(before) >= 2 and all(v[0] for v in before.values())  # configured, not empty
    for args in (
        ["apply", "-f", str(f)],
        ["apply", "-f", str(f), "--prune"],
        ["apply", "-f", str(f), "--dry-run"],
    ):
        r = run(args, env)
        assert r.exit_code == 2, (args, r.output)
        assert r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
        assert "change(s)" not in r.output
    assert snapshot(redis_server, g.namespace) == before


@pytest.mark.parametrize("mode", ["redis_env", "http_env"])
def test_unlisted_resources_are_kept_unless_pruned(
    mode: str, request: pytest.FixtureRequest, g: guard.Guard, tmp_path: Path
) -> None:
    env = request.getfixturevalue(mode)
    configured(g)
    f = tmp_path / "limits.yaml"
    f.write_text(f"namespace: {g.namespace}\nfunctions:\n  ingest: {{max_concurrency: 3}}\n")
    r = run(["apply", "-f", str(f), "--dry-run"], env)
    assert r.exit_code == 0, r.output
    assert "~ function ingest: max_concurrency 4 -> 3" in r.output
    assert "--prune would remove: function report, group etl" in r.output
    assert "- function report" not in r.output and "dry run" in r.output
    r = run(["apply", "-f", str(f)], env)
    assert r.exit_code == 0 and "1 change(s)" in r.output, r.output
    assert g.admin.get_function("ingest")["max_concurrency"] == 3
    assert g.admin.get_function("report") is not None and g.admin.get_group("etl") is not None
    assert g.admin.get_namespace()["max_concurrency"] == 100  # not in the file: kept
    r = run(["apply", "-f", str(f), "--prune", "--dry-run"], env)
    assert "- function report" in r.output and "- group etl" in r.output
    assert "~ max_concurrency: 100 -> null" in r.output
    assert g.admin.get_function("report") is not None
    r = run(["apply", "-f", str(f), "--prune"], env)
    assert r.exit_code == 0, r.output
    assert g.admin.get_function("report") is None and g.admin.get_group("etl") is None
    assert g.admin.list_functions() == [g.admin.get_function("ingest")]


def test_a_merge_that_breaks_a_whole_config_rule_is_refused(
    redis_env: dict[str, str], g: guard.Guard, tmp_path: Path, redis_server: RedisProcess
) -> None:
    """The kept groups count: a file adding reserve above the stored account max is a 409."""
    configured(g)
    f = tmp_path / "limits.yaml"
    f.write_text(f"namespace: {g.namespace}\ngroups:\n  api: {{reserved: 96}}\n")
    before = snapshot(redis_server, g.namespace)
    r = run(["apply", "-f", str(f)], redis_env)
    assert r.exit_code == 1 and "reserved" in r.output
    assert snapshot(redis_server, g.namespace) == before


def test_serve_config_is_the_source_of_truth_and_prunes(
    redis_server: RedisProcess, g: guard.Guard, tmp_path: Path
) -> None:
    configured(g)
    f = tmp_path / "limits.yaml"
    f.write_text(f"namespace: {g.namespace}\nfunctions:\n  ingest: {{max_concurrency: 3}}\n")
    keeper = ConfigKeeper(RedisStore.from_url(redis_server.url, timeout=2.0), load(str(f)))
    keeper.apply(g.namespace)
    assert [d["name"] for d in g.admin.list_functions()] == ["ingest"]
    assert g.admin.list_groups() == []
    keeper.store.close()
