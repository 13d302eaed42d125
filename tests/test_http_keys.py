"""Keys and rates (issue 14) on the HTTP API: the settings fields on namespaces, groups,
functions and the config document; ``key`` in the lease body; rate refusals as 429; the
per-key usage route. Real redis-server (conftest `http` fixture)."""

from __future__ import annotations

from typing import Any

import pytest

PROBLEM = "application/problem+json"


def p(ns: str, rest: str = "") -> str:
    return f"/v1/namespaces/{ns}{rest}"


def test_namespace_rate_fields(http: Any, ns: str) -> None:
    r = http.put(p(ns), json={"max_concurrency": 10, "rate_per_second": 5, "rate_burst": 20})
    assert r.status_code == 200, r.json
    assert r.json == {"name": ns, "max_concurrency": 10, "rate_per_second": 5, "rate_burst": 20}
    assert http.get(p(ns)).json == r.json
    # PUT replaces: the rate left out is unset, and an unset rate is not shown
    assert http.put(p(ns), json={"max_concurrency": 10}).json == {
        "name": ns,
        "max_concurrency": 10,
    }


def test_group_and_function_key_and_rate_fields(http: Any, ns: str) -> None:
    body = {
        "max_concurrency": 50,
        "members": ["ingest"],
        "key_max_concurrency": 5,
        "key_overrides": {"big-tenant": 20},
        "rate_per_second": 100,
        "rate_burst": 200,
    }
    r = http.put(p(ns, "/groups/tenants"), json=body)
    assert r.status_code == 200, r.json
    assert {k: r.json[k] for k in body if k != "members"} == {
        k: v for k, v in body.items() if k != "members"
    }
    fn = {
        "max_concurrency": 100,
        "key_max_concurrency": 2,
        "key_overrides": {"acme": 10, "tiny": 0},
        "rate_per_second": 50.5,
        "rate_burst": 60,
        "key_rate_per_second": 0.5,
        "key_rate_burst": 3,
    }
    r = http.put(p(ns, "/functions/ingest"), json=fn)
    assert r.status_code == 200, r.json
    assert {k: r.json[k] for k in fn} == fn
    assert {k: v for k, v in http.get(p(ns, "/functions/ingest")).json.items() if k in fn} == fn
    # PATCH changes only what it names
    r = http.patch(p(ns, "/functions/ingest"), json={"key_rate_per_second": 2})
    assert r.json["key_rate_per_second"] == 2 and r.json["key_max_concurrency"] == 2
    # unset fields are not shown: a function without them reads as before issue 14
    r = http.put(p(ns, "/functions/plain"), json={"max_concurrency": 1})
    assert set(r.json) == {"name", "max_concurrency", "lease_ttl_seconds", "on_unavailable", "mode"}
    listed = {f["name"]: f for f in http.get(p(ns, "/functions")).json["functions"]}
    assert listed["ingest"]["key_overrides"] == {"acme": 10, "tiny": 0}
    assert "key_overrides" not in listed["plain"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("", {"max_concurrency": 1, "rate_per_second": 0}, "rate_per_second"),
        ("", {"max_concurrency": 1, "rate_per_second": 1_000_001}, "rate_per_second"),
        ("", {"max_concurrency": 1, "rate_per_second": "5"}, "rate_per_second"),
        ("", {"max_concurrency": 1, "rate_burst": 5}, "rate_burst"),
        ("", {"max_concurrency": 1, "rate_per_second": 1, "rate_burst": 0}, "rate_burst"),
        ("/groups/g", {"key_max_concurrency": -1}, "key_max_concurrency"),
        ("/groups/g", {"key_overrides": {"bad key": 1}}, "key_overrides.bad key"),
        ("/groups/g", {"key_overrides": {"k": -1}}, "key_overrides.k"),
        ("/groups/g", {"key_overrides": []}, "key_overrides"),
        ("/groups/g", {"rate_burst": 3}, "rate_burst"),
        ("/groups/g", {"key_rate_per_second": 3}, "key_rate_per_second"),  # functions only
        ("/functions/f", {"key_rate_burst": 3}, "key_rate_burst"),
        ("/functions/f", {"key_rate_per_second": 0.0001}, "key_rate_per_second"),
        ("/functions/f", {"key_rate_per_second": True}, "key_rate_per_second"),
        ("/functions/f", {"rate_burst": 1.5}, "rate_burst"),
        ("/functions/f", {"key_overrides": {"x" * 129: 1}}, "key_overrides." + "x" * 129),
    ],
)
def test_bad_key_and_rate_fields_are_400_naming_the_field(
    http: Any, ns: str, path: str, body: dict[str, Any], field: str
) -> None:
    r = http.put(p(ns, path), json=body)
    assert r.status_code == 400 and r.mimetype == PROBLEM, r.json
    assert r.json["field"] == field, r.json


def test_key_overrides_are_bounded(http: Any, ns: str) -> None:
    from guard.model import MAX_KEY_OVERRIDES

    many = {f"k{i}": 1 for i in range(MAX_KEY_OVERRIDES + 1)}
    r = http.put(p(ns, "/functions/f"), json={"key_overrides": many})
    assert r.status_code == 400 and r.json["field"] == "key_overrides"
    many.popitem()
    assert http.put(p(ns, "/functions/f"), json={"key_overrides": many}).status_code == 200


def test_config_document_carries_keys_and_rates(http: Any, ns: str) -> None:
    doc = {
        "max_concurrency": 100,
        "rate_per_second": 1000,
        "rate_burst": 2000,
        "groups": {
            "tenants": {
                "max_concurrency": 50,
                "reserved": 0,
                "members": ["ingest"],
                "selector": None,
                "mode": "enforce",
                "key_max_concurrency": 5,
            }
        },
        "functions": {
            "ingest": {
                "max_concurrency": 20,
                "lease_ttl_seconds": 900,
                "on_unavailable": None,
                "mode": "enforce",
                "key_max_concurrency": 2,
                "key_overrides": {"acme": 10},
                "key_rate_per_second": 5,
                "key_rate_burst": 10,
            }
        },
    }
    r = http.put(p(ns, "/config"), json=doc)
    assert r.status_code == 200, r.json
    assert r.json == doc
    assert http.get(p(ns, "/config")).json == doc
    r = http.put(p(ns, "/config"), json={**doc, "rate_burst": 0})
    assert r.status_code == 400 and r.json["field"] == "rate_burst"


# -- the lease body's key ------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "a b", "x" * 129, 5, "-x"])
def test_lease_key_follows_the_name_rule(http: Any, ns: str, key: Any) -> None:
    http.put(p(ns, "/functions/f"), json={"max_concurrency": 5})
    r = http.post(p(ns, "/leases"), json={"function": "f", "key": key})
    assert r.status_code == 400 and r.json["field"] == "key", r.json


def test_lease_key_is_passed_to_the_engine(http: Any, ns: str) -> None:
    http.put(p(ns, "/functions/f"), json={"max_concurrency": 5, "key_max_concurrency": 1})
    a = http.post(p(ns, "/leases"), json={"function": "f", "key": "x" * 128})
    assert a.status_code == 201, a.json
    r = http.post(p(ns, "/leases"), json={"function": "f", "key": "x" * 128})
    assert r.status_code == 429 and r.mimetype == PROBLEM
    assert r.json["scope"] == "key" and r.json["function"] == "f"
    assert int(r.headers["Retry-After"]) >= 1
    assert http.post(p(ns, "/leases"), json={"function": "f", "key": "other"}).status_code == 201
    assert http.post(p(ns, "/leases"), json={"function": "f"}).status_code == 201


def test_rate_refusal_is_429_with_retry_after_and_scope(http: Any, ns: str) -> None:
    http.put(p(ns, "/functions/f"), json={"key_rate_per_second": 0.5, "key_rate_burst": 1})
    ok = http.post(p(ns, "/leases"), json={"function": "f", "key": "api-key-1"})
    assert ok.status_code == 201, ok.json
    http.delete(p(ns, f"/leases/{ok.json['lease_id']}"))
    r = http.post(p(ns, "/leases"), json={"function": "f", "key": "api-key-1"})
    assert r.status_code == 429 and r.json["scope"] == "rate:key", r.json
    assert 0 < r.json["retry_after"] <= 2.0
    assert r.headers["Retry-After"] == "2"  # whole seconds, rounded up
    assert (
        http.post(p(ns, "/leases"), json={"function": "f", "key": "api-key-2"}).status_code == 201
    )


# -- per-key usage -------------------------------------------------------------------------


def test_top_keys_by_in_use_at_a_function_and_a_group(http: Any, ns: str, g: Any) -> None:
    http.put(
        p(ns, "/functions/ingest"),
        json={"key_max_concurrency": 5, "key_overrides": {"acme": 9}},
    )
    http.put(p(ns, "/groups/tenants"), json={"members": ["ingest"], "key_max_concurrency": 4})
    held = [g.acquire("ingest", key="acme", ttl=30) for _ in range(3)]
    held += [g.acquire("ingest", key="beta", ttl=30) for _ in range(2)]
    held += [g.acquire("ingest", key=f"t{i}", ttl=30) for i in range(4)]
    held.append(g.acquire("ingest", ttl=30))  # no key: counted in the total only
    r = http.get(p(ns, "/functions/ingest/keys?top=3"))
    assert r.status_code == 200, r.json
    assert r.json == {
        "kind": "function",
        "name": "ingest",
        "in_use": 10,
        "max_concurrency": None,
        "key_max_concurrency": 5,
        "keys_in_use": 6,
        "complete": True,
        "keys": [
            {"key": "acme", "in_use": 3, "max_concurrency": 9},
            {"key": "beta", "in_use": 2, "max_concurrency": 5},
            {"key": "t0", "in_use": 1, "max_concurrency": 5},
        ],
    }
    r = http.get(p(ns, "/groups/tenants/keys"))
    assert r.json["kind"] == "group" and r.json["in_use"] == 10
    assert r.json["keys"][0] == {"key": "acme", "in_use": 3, "max_concurrency": 4}
    assert len(r.json["keys"]) == 6
    for lease in held:
        lease.release()
    r = http.get(p(ns, "/functions/ingest/keys"))
    assert r.json["keys"] == [] and r.json["keys_in_use"] == 0 and r.json["in_use"] == 0


@pytest.mark.parametrize("top", ["0", "1001", "x", "-1", "2.5"])
def test_top_is_bounded(http: Any, ns: str, top: str) -> None:
    r = http.get(p(ns, f"/functions/f/keys?top={top}"))
    assert r.status_code == 400 and r.json["field"] == "top", r.json


def test_keys_of_a_missing_group_is_404(http: Any, ns: str) -> None:
    assert http.get(p(ns, "/groups/nope/keys")).status_code == 404


def test_key_usage_scan_is_bounded(g: Any, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan stops after keys.SCAN_CALLS calls and says the answer is incomplete."""
    from guard import keys

    adm = g.admin
    adm.put_function("f", key_max_concurrency=1)
    held = [g.acquire("f", key=f"k{i}", ttl=30) for i in range(300)]
    monkeypatch.setattr(keys, "SCAN_COUNT", 10)
    monkeypatch.setattr(keys, "SCAN_CALLS", 2)
    part = adm.key_usage("function", "f", top=1000)
    assert not part["complete"] and 0 < part["keys_in_use"] < 300
    monkeypatch.setattr(keys, "SCAN_CALLS", 100)
    full = adm.key_usage("function", "f", top=1000)
    assert full["complete"] and full["keys_in_use"] == 300 and len(full["keys"]) == 300
    for lease in held:
        lease.release()


def test_http_admin_key_usage_is_the_same(live_server: str, ns: str, g: Any) -> None:
    """HttpAdmin.key_usage reads the route; Admin.key_usage the store: the same document."""
    from live import ADMIN_TOKEN

    from guard.http_backend import HttpAdmin, HttpBackend

    g.admin.put_function("f", key_max_concurrency=3)
    lease = g.acquire("f", key="acme", ttl=30)
    over_http = HttpAdmin(HttpBackend(live_server, ADMIN_TOKEN), ns)
    try:
        assert over_http.key_usage("function", "f", 5) == g.admin.key_usage("function", "f", 5)
        over_http.set_namespace(max_concurrency=None, rate_per_second=2.5, rate_burst=4)
        assert g.admin.get_namespace()["rate_per_second"] == 2.5
    finally:
        lease.release()
        over_http.close()


def test_held_leases_show_their_key(http: Any, ns: str, g: Any, live_server: str) -> None:
    """GET …/leases shows a keyed lease's key (and no key field for the others); the HTTP
    admin reads back the same `LeaseInfo` as the Redis one."""
    from live import ADMIN_TOKEN

    from guard.http_backend import HttpAdmin, HttpBackend

    g.admin.put_function("f", key_max_concurrency=2)
    keyed = g.acquire("f", key="acme", ttl=30)
    plain = g.acquire("f", ttl=30)
    docs = {d["lease_id"]: d for d in http.get(p(ns, "/leases")).json["leases"]}
    assert docs[keyed.lease_id]["key"] == "acme"
    assert "key" not in docs[plain.lease_id]
    over_http = HttpAdmin(HttpBackend(live_server, ADMIN_TOKEN), ns)
    try:
        assert over_http.leases("f") == g.admin.leases("f")
    finally:
        over_http.close()
    keyed.release()
    plain.release()
