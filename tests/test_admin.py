"""Admin writes: every field validated with an error naming it, whole-config conflicts
(S2 preconditions), and atomicity — a rejected write changes nothing in Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis

import guard
from guard import keys


def snapshot(rclient: redis.Redis, ns: str) -> dict[bytes, bytes]:
    return rclient.hgetall(keys.config_key(ns))


BAD_GROUP = [
    ({"max_concurrency": -1}, "max_concurrency"),
    ({"max_concurrency": "10"}, "max_concurrency"),
    ({"max_concurrency": 1.5}, "max_concurrency"),
    ({"max_concurrency": True}, "max_concurrency"),
    ({"max_concurrency": 10**12}, "max_concurrency"),
    ({"reserved": -1}, "reserved"),
    ({"reserved": None}, "reserved"),
    ({"reserved": "1"}, "reserved"),
    ({"reserved": 5, "max_concurrency": 4}, "reserved"),
    ({"members": "ingest"}, "members"),
    ({"members": ["ok", "not ok"]}, "members"),
    ({"members": ["a", "a"]}, "members"),
    ({"members": [1]}, "members"),
    ({"members": ["x" * 200]}, "members"),
    ({"selector": {"tags": {}}}, "selector"),
    ({"selector": {"tags": {"k": 1}}}, "selector"),
    ({"selector": {"stack": ""}}, "selector"),
    ({"selector": {"stack": "s", "tags": {"a": "b"}}}, "selector"),
    ({"selector": "stack"}, "selector"),
    ({"mode": "audit"}, "mode"),
    ({"colour": "red"}, "colour"),
]

BAD_FUNCTION = [
    ({"max_concurrency": -5}, "max_concurrency"),
    ({"max_concurrency": [1]}, "max_concurrency"),
    ({"lease_ttl_seconds": 0}, "lease_ttl_seconds"),
    ({"lease_ttl_seconds": -1}, "lease_ttl_seconds"),
    ({"lease_ttl_seconds": "60"}, "lease_ttl_seconds"),
    ({"lease_ttl_seconds": float("inf")}, "lease_ttl_seconds"),
    ({"lease_ttl_seconds": 86401}, "lease_ttl_seconds"),
    ({"lease_ttl_seconds": None}, "lease_ttl_seconds"),
    ({"on_unavailable": "maybe"}, "on_unavailable"),
    ({"mode": "off"}, "mode"),
    ({"reserved": 1}, "reserved"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_GROUP)
def test_bad_group_fields(g: guard.Guard, rclient, ns: str, fields: Any, field: str) -> None:
    g.admin.put_group("etl", max_concurrency=10, members=["ingest"])
    before = snapshot(rclient, ns)
    for write in (g.admin.put_group, g.admin.patch_group):
        with pytest.raises(guard.UsageError) as ei:
            write("etl", **fields)
        assert ei.value.field == field
        assert field in str(ei.value)
    assert snapshot(rclient, ns) == before


@pytest.mark.parametrize(("fields", "field"), BAD_FUNCTION)
def test_bad_function_fields(g: guard.Guard, rclient, ns: str, fields: Any, field: str) -> None:
    g.admin.put_function("ingest", max_concurrency=3)
    before = snapshot(rclient, ns)
    for write in (g.admin.put_function, g.admin.patch_function):
        with pytest.raises(guard.UsageError) as ei:
            write("ingest", **fields)
        assert ei.value.field == field
    assert snapshot(rclient, ns) == before


@pytest.mark.parametrize("value", [-1, "5", 2.5, False, 10**10])
def test_bad_namespace_max(g: guard.Guard, rclient, ns: str, value: Any) -> None:
    g.admin.set_namespace(max_concurrency=5)
    before = snapshot(rclient, ns)
    with pytest.raises(guard.UsageError) as ei:
        g.admin.set_namespace(max_concurrency=value)
    assert ei.value.field == "max_concurrency"
    assert snapshot(rclient, ns) == before


@pytest.mark.parametrize("name", ["", "a b", "x" * 129, "a/b", "{tag}", "é"])
def test_bad_names(g: guard.Guard, name: str) -> None:
    for call in (g.admin.put_group, g.admin.put_function, g.admin.get_group, g.admin.delete_group):
        with pytest.raises(guard.UsageError):
            call(name)


def test_sum_of_reserved_above_account_max_is_a_conflict(g: guard.Guard, rclient, ns) -> None:
    g.admin.set_namespace(max_concurrency=10)
    g.admin.put_group("api", reserved=6, members=["login"])
    before = snapshot(rclient, ns)
    with pytest.raises(guard.ConflictError) as ei:
        g.admin.put_group("web", reserved=5, members=["home"])
    assert ei.value.field == "reserved"
    with pytest.raises(guard.ConflictError):
        g.admin.set_namespace(max_concurrency=5)  # lowering below Σ reserved
    with pytest.raises(guard.ConflictError):
        g.admin.patch_group("api", reserved=11)
    assert snapshot(rclient, ns) == before
    g.admin.put_group("web", reserved=4, members=["home"])  # exactly at the max is fine


def test_reserved_without_account_max_is_allowed(g: guard.Guard) -> None:
    g.admin.put_group("api", reserved=100, members=["login"])
    assert g.acquire("login").held


def test_a_function_in_two_reserving_groups_is_a_conflict(g: guard.Guard, rclient, ns) -> None:
    g.admin.put_group("api", reserved=2, members=["login", "checkout"])
    g.admin.put_group("plain", max_concurrency=5, members=["login"])  # non-reserving: fine
    before = snapshot(rclient, ns)
    with pytest.raises(guard.ConflictError) as ei:
        g.admin.put_group("web", reserved=1, members=["checkout"])
    assert ei.value.field == "members"
    with pytest.raises(guard.ConflictError):
        g.admin.patch_group("plain", reserved=1)
    assert snapshot(rclient, ns) == before


def test_get_put_patch_delete_roundtrip(g: guard.Guard) -> None:
    a = g.admin
    assert a.get_group("etl") is None and a.get_function("ingest") is None
    doc = a.put_group("etl", max_concurrency=5, members=["transform", "ingest"])
    assert doc == {
        "name": "etl",
        "max_concurrency": 5,
        "reserved": 0,
        "members": ["ingest", "transform"],
        "selector": None,
        "mode": "enforce",
    }
    assert a.get_group("etl") == doc
    assert a.patch_group("etl", reserved=2)["reserved"] == 2
    assert a.get_group("etl")["max_concurrency"] == 5  # PATCH merges
    a.put_group("etl", members=["ingest"])  # PUT replaces
    assert a.get_group("etl")["max_concurrency"] is None
    assert a.put_function("ingest", max_concurrency=3)["lease_ttl_seconds"] == 900.0
    assert a.patch_function("ingest", mode="shadow")["max_concurrency"] == 3
    assert [f["name"] for f in a.list_functions()] == ["ingest"]
    assert [x["name"] for x in a.list_groups()] == ["etl"]
    assert a.delete_group("etl") is True and a.delete_group("etl") is False
    assert a.delete_function("ingest") is True and a.delete_function("ingest") is False
    assert g.acquire("ingest").groups == ()  # plans follow the deletes


def test_patch_of_missing_resource_is_not_found(g: guard.Guard) -> None:
    with pytest.raises(guard.NotFound):
        g.admin.patch_group("nope", max_concurrency=1)
    with pytest.raises(guard.NotFound):
        g.admin.patch_function("nope", max_concurrency=1)


def test_namespaces_are_listed(g: guard.Guard, ns: str) -> None:
    g.admin.set_namespace(max_concurrency=3)
    assert ns in g.admin.list_namespaces()
    assert g.admin.get_namespace() == {"name": ns, "max_concurrency": 3}


def test_concurrent_writers_do_not_lose_updates(g: guard.Guard, redis_server, ns) -> None:
    import threading

    others = [guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2) for _ in range(4)]

    def writer(i: int, client: guard.Guard) -> None:
        for j in range(10):
            client.admin.put_function(f"f{i}-{j}", max_concurrency=j)

    threads = [threading.Thread(target=writer, args=(i, c)) for i, c in enumerate(others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(g.admin.list_functions()) == 40
