"""Every admin route and error code of the HTTP API, through Flask's test client."""

from __future__ import annotations

from typing import Any

import pytest

PROBLEM = "application/problem+json"


def p(ns: str, rest: str = "") -> str:
    return f"/v1/namespaces/{ns}{rest}"


def test_namespace_get_put_and_list(http: Any, ns: str) -> None:
    assert http.get(p(ns)).json == {"name": ns, "max_concurrency": None}
    r = http.put(p(ns), json={"max_concurrency": 10})
    assert r.status_code == 200 and r.json["max_concurrency"] == 10
    assert ns in http.get("/v1/namespaces").json["namespaces"]
    assert http.put(p(ns), json={"max_concurrency": None}).json["max_concurrency"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_concurrency": -1}, "max_concurrency"),
        ({"max_concurrency": "x"}, "max_concurrency"),
        ({"max_concurrency": 1, "colour": "red"}, "colour"),
        ({}, "max_concurrency"),
    ],
)
def test_bad_input_is_400_naming_the_field(http: Any, ns: str, body: Any, field: str) -> None:
    r = http.put(p(ns), json=body)
    assert r.status_code == 400 and r.mimetype == PROBLEM
    assert r.json["field"] == field and r.json["status"] == 400
    assert {"type", "title", "detail"} <= set(r.json)


def test_non_json_body_is_400(http: Any, ns: str) -> None:
    r = http.put(p(ns), data="not json", content_type="application/json")
    assert r.status_code == 400 and r.json["field"] == "body"
    assert http.put(p(ns), json=[1]).status_code == 400


def test_bad_namespace_name_is_400(http: Any) -> None:
    r = http.get(p("bad*name"))
    assert r.status_code == 400 and r.json["field"] == "namespace"


def test_groups_crud(http: Any, ns: str) -> None:
    assert http.get(p(ns, "/groups")).json == {"groups": []}
    r = http.put(p(ns, "/groups/etl"), json={"max_concurrency": 5, "members": ["b", "a"]})
    assert r.status_code == 200
    assert r.json == {
        "name": "etl",
        "max_concurrency": 5,
        "reserved": 0,
        "members": ["a", "b"],
        "selector": None,
        "mode": "enforce",
    }
    r = http.patch(p(ns, "/groups/etl"), json={"mode": "shadow"})
    assert r.json["mode"] == "shadow" and r.json["max_concurrency"] == 5
    r = http.put(p(ns, "/groups/etl"), json={"selector": {"stack": "s1"}})
    assert r.json["max_concurrency"] is None and r.json["selector"] == {"stack": "s1"}
    assert http.get(p(ns, "/groups/etl")).json["selector"] == {"stack": "s1"}
    assert [g["name"] for g in http.get(p(ns, "/groups")).json["groups"]] == ["etl"]
    assert http.delete(p(ns, "/groups/etl")).status_code == 204
    assert http.delete(p(ns, "/groups/etl")).status_code == 404
    assert http.get(p(ns, "/groups/etl")).status_code == 404
    assert http.patch(p(ns, "/groups/etl"), json={"mode": "shadow"}).status_code == 404


def test_functions_crud(http: Any, ns: str) -> None:
    r = http.put(p(ns, "/functions/ingest"), json={"max_concurrency": 3, "lease_ttl_seconds": 60})
    assert r.status_code == 200 and r.json["lease_ttl_seconds"] == 60
    r = http.patch(p(ns, "/functions/ingest"), json={"on_unavailable": "closed"})
    assert r.json["on_unavailable"] == "closed" and r.json["max_concurrency"] == 3
    assert http.get(p(ns, "/functions/ingest")).json["on_unavailable"] == "closed"
    assert len(http.get(p(ns, "/functions")).json["functions"]) == 1
    r = http.patch(p(ns, "/functions/ingest"), json={"lease_ttl_seconds": 0})
    assert r.status_code == 400 and r.json["field"] == "lease_ttl_seconds"
    assert http.delete(p(ns, "/functions/ingest")).status_code == 204
    assert http.get(p(ns, "/functions/ingest")).status_code == 404
    assert http.delete(p(ns, "/functions/ingest")).status_code == 404


def test_conflict_is_409_and_writes_nothing(http: Any, ns: str) -> None:
    http.put(p(ns), json={"max_concurrency": 10})
    http.put(p(ns, "/groups/api"), json={"reserved": 8, "members": ["login"]})
    r = http.put(p(ns, "/groups/web"), json={"reserved": 5, "members": ["home"]})
    assert r.status_code == 409 and r.json["field"] == "reserved"
    assert http.get(p(ns, "/groups/web")).status_code == 404
    r = http.put(p(ns, "/groups/b2"), json={"reserved": 1, "members": ["login"]})
    assert r.status_code == 409 and r.json["field"] == "members"
    assert http.put(p(ns), json={"max_concurrency": 5}).status_code == 409
    assert http.get(p(ns)).json["max_concurrency"] == 10


def test_reserved_above_group_max_is_400(http: Any, ns: str) -> None:
    r = http.put(p(ns, "/groups/g"), json={"max_concurrency": 1, "reserved": 2})
    assert r.status_code == 400 and r.json["field"] == "reserved"


def test_body_over_1mib_is_413(http: Any, ns: str) -> None:
    r = http.put(
        p(ns, "/groups/g"),
        data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        content_type="application/json",
    )
    assert r.status_code == 413 and r.mimetype == PROBLEM


def test_usage(http: Any, ns: str, g: Any) -> None:
    http.put(p(ns), json={"max_concurrency": 4})
    http.put(p(ns, "/groups/etl"), json={"max_concurrency": 2, "reserved": 1, "members": ["a"]})
    g.acquire("a", ttl=30)
    g.acquire("b", ttl=30)
    u = http.get(p(ns, "/usage")).json
    assert u["account"] == {"in_use": 2, "max_concurrency": 4}
    assert u["groups"]["etl"] == {"in_use": 1, "max_concurrency": 2, "reserved": 1}
    assert u["functions"]["b"] == {"in_use": 1, "max_concurrency": None}


def test_config_document_roundtrip(http: Any, ns: str) -> None:
    doc = {
        "max_concurrency": 10,
        "groups": {"api": {"reserved": 2, "members": ["login"]}},
        "functions": {"login": {"max_concurrency": 3}},
    }
    r = http.put(p(ns, "/config"), json=doc)
    assert r.status_code == 200
    got = http.get(p(ns, "/config")).json
    assert (
        got["groups"]["api"]["reserved"] == 2 and got["functions"]["login"]["max_concurrency"] == 3
    )
    r = http.put(p(ns, "/config"), json={"max_concurrency": 1, "groups": doc["groups"]})
    assert r.status_code == 409
    assert http.get(p(ns, "/config")).json == got


def test_unknown_route_and_method(http: Any) -> None:
    r = http.get("/nope")
    assert r.status_code == 404 and r.mimetype == PROBLEM
    assert http.post("/v1/namespaces").status_code == 405


def test_store_down_is_503(redis_server: Any) -> None:
    from live import ADMIN_TOKEN

    from guard.server import create_app

    app = create_app(
        {"REDIS_URL": "redis://127.0.0.1:1/0", "ADMIN_TOKENS": [ADMIN_TOKEN], "CLIENT_TOKENS": []}
    )
    c = app.test_client()
    h = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    r = c.get("/v1/namespaces/x/usage", headers=h)
    assert r.status_code == 503 and r.mimetype == PROBLEM
    assert c.get("/readyz").status_code == 503
    assert c.get("/healthz").status_code == 200
