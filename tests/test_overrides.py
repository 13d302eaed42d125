"""Temporary overrides (expire by server time inside the admission script, survive re-applies)
and the audit log (appended atomically with every config write)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner
from redis_proc import RedisProcess

import guard
from guard import keys
from guard import overrides as ov
from guard.cli import main
from guard.errors import UsageError

LIMITS = """
namespace: {ns}
max_concurrency: 100
groups:
  etl: {{max_concurrency: 10, members: [ingest]}}
functions:
  ingest: {{max_concurrency: 4}}
"""


def grants(g: guard.Guard, fn: str, n: int) -> int:
    """How many of `n` acquires of `fn` are granted (the leases are held)."""
    held = 0
    for _ in range(n):
        try:
            g.acquire(fn, ttl=30)
            held += 1
        except guard.Throttled:
            pass
    return held


def test_pause_for_two_seconds_then_grants_after_expiry(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=4)
    doc = g.admin.override_function("ingest", max_concurrency=0, seconds=2, reason="incident")
    assert doc["max_concurrency"] == 0 and 0 < doc["seconds_left"] <= 2
    with pytest.raises(guard.Throttled) as exc:
        g.acquire("ingest", ttl=30)
    assert exc.value.scope == "function"
    # Nothing runs in between: the admission script compares the deadline with TIME.
    time.sleep(2.1)
    assert grants(g, "ingest", 5) == 4  # the setting (4) applies again
    assert g.admin.overrides() == []


def test_group_override_caps_members(g: guard.Guard) -> None:
    g.admin.put_group("etl", max_concurrency=10, members=["ingest", "load"])
    g.admin.override_group("etl", max_concurrency=2, seconds=60)
    assert grants(g, "ingest", 2) + grants(g, "load", 3) == 2
    u = g.admin.usage()
    assert u["groups"]["etl"]["max_concurrency"] == 10
    assert u["groups"]["etl"]["override"]["max_concurrency"] == 2
    assert g.admin.clear_override("group", "etl") is True
    assert g.admin.clear_override("group", "etl") is False
    assert grants(g, "load", 3) == 3
    assert "override" not in g.admin.usage()["groups"]["etl"]


def test_override_of_unconfigured_function(g: guard.Guard) -> None:
    g.admin.override_function("adhoc", max_concurrency=1, seconds=60)
    assert grants(g, "adhoc", 3) == 1
    assert g.admin.usage()["functions"]["adhoc"]["override"]["max_concurrency"] == 1


def test_apply_and_replace_keep_the_override(
    g: guard.Guard, redis_server: RedisProcess, ns: str, tmp_path: Path
) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(LIMITS.format(ns=ns))
    env = {"GUARD_REDIS_URL": redis_server.url, "GUARD_NAMESPACE": ns, "GUARD_URL": ""}
    r = CliRunner().invoke(main, ["apply", "-f", str(path)], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    g.admin.override_function("ingest", max_concurrency=0, seconds=60, reason="r")
    g.admin.put_function("ingest", max_concurrency=3)  # drift, so apply has a change to make
    r = CliRunner().invoke(main, ["apply", "-f", str(path)], env=env, catch_exceptions=False)
    assert r.exit_code == 0 and "1 change" in r.output, r.output
    assert g.admin.get_function("ingest")["max_concurrency"] == 4
    assert [o["name"] for o in g.admin.overrides()] == ["ingest"]
    with pytest.raises(guard.Throttled):
        g.acquire("ingest", ttl=30)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"max_concurrency": -1, "seconds": 10}, "max_concurrency"),
        ({"max_concurrency": None, "seconds": 10}, "max_concurrency"),
        ({"max_concurrency": True, "seconds": 10}, "max_concurrency"),
        ({"max_concurrency": 1, "seconds": 0}, "seconds"),
        ({"max_concurrency": 1, "seconds": ov.MAX_OVERRIDE_SECONDS + 1}, "seconds"),
        ({"max_concurrency": 1, "seconds": float("inf")}, "seconds"),
        ({"max_concurrency": 1, "seconds": "10"}, "seconds"),
        ({"max_concurrency": 1, "seconds": 10, "reason": "x" * (ov.MAX_REASON + 1)}, "reason"),
    ],
)
def test_override_bounds(
    g: guard.Guard, rclient: redis.Redis, ns: str, fields: dict[str, Any], bad: str
) -> None:
    before = rclient.hgetall(keys.config_key(ns))
    with pytest.raises(UsageError) as exc:
        g.admin.override_function("ingest", **fields)
    assert exc.value.field == bad
    assert rclient.hgetall(keys.config_key(ns)) == before
    with pytest.raises(UsageError):
        g.admin.override_function("not ok", max_concurrency=1, seconds=1)
    with pytest.raises(UsageError):
        g.admin.clear_override("account", "x")


def test_override_count_is_bounded(g: guard.Guard) -> None:
    for i in range(ov.MAX_OVERRIDES):
        g.admin.override_function(f"f{i}", max_concurrency=1, seconds=60)
    with pytest.raises(guard.GuardError, match="at most"):
        g.admin.override_function("one-more", max_concurrency=1, seconds=60)
    assert len(g.admin.overrides()) == ov.MAX_OVERRIDES


def test_audit_records_every_write(g: guard.Guard, redis_server: RedisProcess, ns: str) -> None:
    g.admin.put_group("etl", max_concurrency=10, members=["ingest"])
    g.admin.patch_group("etl", max_concurrency=5)
    g.admin.override_group("etl", max_concurrency=0, seconds=60, reason="pager")
    g.admin.clear_override("group", "etl")
    g.admin.delete_group("etl")
    other = guard.Guard.from_url(redis_server.url, namespace=ns)
    try:
        from guard.admin import Admin

        Admin(other.admin.store, ns, actor="alice").set_namespace(max_concurrency=7)
    finally:
        other.close()
    log = g.admin.audit(limit=10)
    assert [e["action"] for e in log] == [
        "set_namespace",
        "delete_group",
        "clear_override",
        "override",
        "patch_group",
        "put_group",
    ]
    assert log[0]["actor"] == "alice" and log[1]["actor"].startswith("redis:")
    assert log[4]["before"]["group:etl"]["max_concurrency"] == 10
    assert log[4]["after"]["group:etl"]["max_concurrency"] == 5
    assert log[3]["after"]["override:group:etl"]["reason"] == "pager"
    assert log[3]["target"] == "group:etl"
    assert abs(log[0]["time"] - time.time()) < 60
    assert len(g.admin.audit(limit=2)) == 2
    for bad in (0, ov.AUDIT_MAX_LIMIT + 1, "5", True):
        with pytest.raises(UsageError):
            g.admin.audit(limit=bad)  # type: ignore[arg-type]


def test_audit_is_capped_and_skips_no_op_writes(
    g: guard.Guard, rclient: redis.Redis, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "AUDIT_MAX_ENTRIES", 5)
    for i in range(8):
        g.admin.set_namespace(max_concurrency=i)
    g.admin.set_namespace(max_concurrency=7)  # no change: no entry
    assert rclient.xlen(keys.audit_key(ns)) == 5
    assert g.admin.audit(limit=100)[0]["after"] == {"namespace": {"max_concurrency": 7}}


def test_audit_entry_bounds_large_documents(g: guard.Guard) -> None:
    members = [f"fn-{i:05d}-{'x' * 60}" for i in range(1000)]
    g.admin.put_group("big", members=members)
    e = g.admin.audit(limit=1)[0]
    assert e["after"]["truncated"] is True and "group:big" in e["after"]["first"]


@pytest.mark.parametrize("mode", ["redis", "http"])
def test_cli_override_pause_resume_audit(
    mode: str, redis_server: RedisProcess, ns: str, g: guard.Guard, live_server: str
) -> None:
    from live import ADMIN_TOKEN

    env = {"GUARD_NAMESPACE": ns, "GUARD_REDIS_URL": redis_server.url, "GUARD_URL": ""}
    if mode == "http":
        env.update({"GUARD_URL": live_server, "GUARD_TOKEN": ADMIN_TOKEN, "GUARD_REDIS_URL": ""})

    def cli(*args: str) -> str:
        r = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    g.admin.put_function("ingest", max_concurrency=4)
    out = cli("override", "function", "ingest", "--max", "1", "--for", "2h", "--reason", "slow db")
    assert "max_concurrency 1 for 2h0m0s (slow db)" in out
    assert grants(g, "ingest", 3) == 1
    assert "paused" in cli("pause", "function", "ingest", "--for", "15m")
    assert "ingest" in cli("overrides")
    assert "resumed" in cli("resume", "function", "ingest")
    assert "no override" in cli("resume", "function", "ingest")
    entries = json.loads(cli("audit", "--json", "--limit", "3"))
    assert [e["action"] for e in entries] == ["clear_override", "override", "override"]
    if mode == "http":
        assert entries[0]["actor"] == "GUARD_ADMIN_TOKENS[0]"
    assert "clear_override" in cli("audit")
    r = CliRunner().invoke(
        main, ["override", "function", "ingest", "--max", "1", "--for", "2x"], env=env
    )
    assert r.exit_code == 2 and "duration" in r.output
    r = CliRunner().invoke(
        main, ["override", "function", "ingest", "--max", "1", "--for", "8d"], env=env
    )
    assert r.exit_code != 0 and "seconds" in r.output


def test_serve_config_reapply_keeps_the_override_and_is_audited(
    g: guard.Guard, ns: str, redis_server: RedisProcess
) -> None:
    from guard.config_file import parse
    from guard.server.serve import ConfigKeeper
    from guard.store import RedisStore

    configs = parse(yaml.safe_load(LIMITS.format(ns=ns)))
    keeper = ConfigKeeper(RedisStore.from_url(redis_server.url, timeout=2.0), configs)
    try:
        keeper.apply(ns)
        g.admin.override_group("etl", max_concurrency=0, seconds=60, reason="pause etl")
        g.admin.patch_group("etl", max_concurrency=9)  # drift the re-apply undoes
        keeper.apply(ns)
    finally:
        keeper.store.close()
    assert g.admin.get_group("etl")["max_concurrency"] == 10
    assert [o["name"] for o in g.admin.overrides()] == ["etl"]
    with pytest.raises(guard.Throttled) as exc:
        g.acquire("ingest", ttl=30)
    assert exc.value.scope == "group:etl"
    last = g.admin.audit(limit=1)[0]
    assert (last["actor"], last["action"]) == ("guard serve --config", "apply")
    assert last["before"]["group:etl"]["max_concurrency"] == 9


def test_override_matches_only_its_own_name_and_kind(g: guard.Guard) -> None:
    g.admin.put_group("etl", members=["ingest2", "etl"])
    g.admin.override_function("ingest", max_concurrency=0, seconds=60)
    g.admin.override_function("x.ingest", max_concurrency=0, seconds=60)
    g.admin.override_group("et", max_concurrency=0, seconds=60)
    g.admin.override_group("etl", max_concurrency=2, seconds=60)
    for fn in ("ingest2", "re-ingest", "ingest.x"):
        g.acquire(fn, ttl=30)  # names around an overridden one are not matched
    with pytest.raises(guard.Throttled):
        g.acquire("ingest", ttl=30)
    g.acquire("etl", ttl=30)  # a function named like a group is not the group's override ...
    with pytest.raises(guard.Throttled) as exc:
        g.acquire("etl", ttl=30)  # ... but it is a member: etl (override 2) is full
    assert exc.value.scope == "group:etl"


def test_stored_forms_without_redis() -> None:
    """The packed tail and the documents, pure (no store)."""
    a = ov.make("function", "ingest", 0, 2.5, "why", "alice", now_ms=1000)
    b = ov.make("group", "etl", 7, 60, None, "bob", now_ms=1000)
    assert (a.until_ms, b.until_ms, b.reason) == (3500, 61000, "")
    assert ov.pack([b, a]) == b"\0fingest\x000:3500;\0getl\x007:61000;"
    fields = ov.to_fields({("function", "ingest"): a, ("group", "etl"): b})
    assert set(fields) == {"O:f:ingest", "O:g:etl"}
    assert ov.from_fields(fields) == {("function", "ingest"): a, ("group", "etl"): b}
    assert [o.name for o in ov.active(fields, now_ms=3500)] == ["etl"]  # ingest ended at 3500
    assert a.doc(3000)["seconds_left"] == 0.5 and a.doc(9000)["seconds_left"] == 0
    before, after = ov.changes(
        {"v": "3", "G:etl": '{"max_concurrency": 1}', "p:ns": b"x"},
        {"v": "4", "G:etl": '{"max_concurrency": 2}', "p:ns": b"y", "O:g:etl": b.stored()},
    )
    assert before == {"group:etl": {"max_concurrency": 1}, "override:group:etl": None}
    assert after["override:group:etl"]["actor"] == "bob"
