"""Lease routes, the auth matrix, health and readiness."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from live import ADMIN_TOKEN, CLIENT_TOKEN


def lp(ns: str, rest: str = "") -> str:
    return f"/v1/namespaces/{ns}/leases{rest}"


def test_acquire_renew_release(http: Any, ns: str) -> None:
    http.put(f"/v1/namespaces/{ns}/groups/etl", json={"members": ["ingest"]})
    r = http.post(lp(ns), json={"function": "ingest", "ttl_seconds": 10})
    assert r.status_code == 201
    lease = r.json
    assert lease["function"] == "ingest" and lease["groups"] == ["etl"]
    assert lease["ttl_seconds"] == 10 and lease["fence"] >= 1 and len(lease["lease_id"]) == 32
    assert r.headers["Location"].endswith(lease["lease_id"])
    listed = http.get(lp(ns)).json["leases"]
    assert [x["lease_id"] for x in listed] == [lease["lease_id"]]
    assert http.get(lp(ns) + "?function=other").json["leases"] == []
    r = http.post(lp(ns, f"/{lease['lease_id']}/renew"), json={"ttl_seconds": 20})
    assert r.status_code == 200 and r.json["ttl_seconds"] == 20
    assert http.post(lp(ns, f"/{lease['lease_id']}/renew")).status_code == 200  # no body
    assert http.delete(lp(ns, f"/{lease['lease_id']}")).status_code == 204
    r = http.delete(lp(ns, f"/{lease['lease_id']}"))
    assert r.status_code == 404 and r.json["type"].endswith("lease-not-held")
    r = http.post(lp(ns, f"/{lease['lease_id']}/renew"))
    assert r.status_code == 404 and r.json["field"] == "lease_id"


def test_acquire_is_idempotent_by_lease_id(http: Any, ns: str) -> None:
    http.put(f"/v1/namespaces/{ns}", json={"max_concurrency": None})
    body = {"function": "f", "ttl_seconds": 10, "lease_id": "ab" * 16}
    a, b = http.post(lp(ns), json=body).json, http.post(lp(ns), json=body).json
    assert a["fence"] == b["fence"]
    assert http.get(f"/v1/namespaces/{ns}/usage").json["account"]["in_use"] == 1


def test_throttle_is_429_with_retry_after_and_scope(http: Any, ns: str) -> None:
    http.put(f"/v1/namespaces/{ns}/groups/etl", json={"max_concurrency": 1, "members": ["f"]})
    assert http.post(lp(ns), json={"function": "f", "ttl_seconds": 10}).status_code == 201
    r = http.post(lp(ns), json={"function": "f", "ttl_seconds": 10})
    assert r.status_code == 429 and r.mimetype == "application/problem+json"
    assert r.json["scope"] == "group:etl" and r.json["function"] == "f"
    assert r.json["retry_after"] > 0 and int(r.headers["Retry-After"]) >= 1


def test_wait_is_woken_by_a_release(http: Any, ns: str) -> None:
    http.put(f"/v1/namespaces/{ns}/functions/f", json={"max_concurrency": 1})
    held = http.post(lp(ns), json={"function": "f", "ttl_seconds": 30}).json
    threading.Timer(0.3, lambda: http.delete(lp(ns, f"/{held['lease_id']}"))).start()
    t0 = time.monotonic()
    r = http.post(lp(ns), json={"function": "f", "ttl_seconds": 30, "wait_seconds": 10})
    assert r.status_code == 201 and time.monotonic() - t0 < 9


def test_wait_is_bounded(http: Any, ns: str) -> None:
    r = http.post(lp(ns), json={"function": "f", "wait_seconds": 31})
    assert r.status_code == 400 and r.json["field"] == "wait_seconds"


@pytest.mark.parametrize("more", [3600.001, -1, "10", True])
def test_wait_more_is_bounded(http: Any, ns: str, more: Any) -> None:
    """wait_more_seconds (docs/http.md): a number, 0 <= s <= 3600."""
    body = {"function": "f", "wait_seconds": 1, "wait_more_seconds": more}
    r = http.post(lp(ns), json=body)
    assert r.status_code == 400 and r.json["field"] == "wait_more_seconds", r.json


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"function": "f", "lease_id": "xyz"}, "lease_id"),
        ({"function": "f", "ttl_seconds": 0}, "ttl_seconds"),
        ({"function": "bad name"}, "function"),
        ({"ttl_seconds": 1}, "function"),
        ({"function": "f", "extra": 1}, "extra"),
    ],
)
def test_bad_lease_requests(http: Any, ns: str, body: Any, field: str) -> None:
    r = http.post(lp(ns), json=body)
    assert r.status_code == 400 and r.json["field"] == field


def test_bad_lease_id_in_path_is_400(http: Any, ns: str) -> None:
    assert http.delete(lp(ns, "/nothex")).status_code == 400


def test_unavailable_counts_reach_the_store(http: Any, ns: str, rclient: Any) -> None:
    http.put(f"/v1/namespaces/{ns}/functions/g", json={})
    body = {"function": "f", "unavailable": {"f": 3, "g": 1}}
    assert http.post(lp(ns), json=body).status_code == 201
    use = rclient.hgetall(f"guard:{{{ns}}}:use")
    assert use[b"u:f"] == b"3" and use[b"u:g"] == b"1"


# -- auth matrix ---------------------------------------------------------------------------

ADMIN_ROUTE = ("get", "/v1/namespaces")


@pytest.mark.parametrize(
    ("headers", "admin_status", "lease_status"),
    [
        ({}, 401, 401),
        ({"Authorization": "Bearer wrong"}, 401, 401),
        ({"Authorization": f"Basic {ADMIN_TOKEN}"}, 401, 401),
        ({"Authorization": f"Bearer {CLIENT_TOKEN}"}, 403, 201),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, 200, 201),
    ],
)
def test_auth_matrix(app: Any, ns: str, headers: Any, admin_status: int, lease_status: int) -> None:
    c = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (
        c.put(f"/v1/namespaces/{ns}", json={"max_concurrency": 5}, headers=admin).status_code == 200
    )
    r = c.get("/v1/namespaces", headers=headers)
    assert r.status_code == admin_status
    if admin_status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        c.put(f"/v1/namespaces/{ns}", json={"max_concurrency": 1}, headers=headers).status_code
        == admin_status
    )
    assert c.post(lp(ns), json={"function": "f"}, headers=headers).status_code == lease_status
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert c.get(path, headers=headers).status_code == 200


def test_open_mode_without_tokens(redis_server: Any, ns: str) -> None:
    from guard.server import create_app

    c = create_app({"REDIS_URL": redis_server.url, "ADMIN_TOKENS": [], "CLIENT_TOKENS": []})
    assert (
        c.test_client().put(f"/v1/namespaces/{ns}", json={"max_concurrency": 1}).status_code == 200
    )


def test_metrics_token_can_be_required(redis_server: Any) -> None:
    from guard.server import create_app

    app = create_app(
        {
            "REDIS_URL": redis_server.url,
            "ADMIN_TOKENS": [ADMIN_TOKEN],
            "CLIENT_TOKENS": [],
            "METRICS_TOKEN_REQUIRED": True,
        }
    )
    c = app.test_client()
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    assert c.get("/healthz").status_code == 200


def test_bind_check() -> None:
    from guard.server.auth import check_bind

    assert check_bind("127.0.0.1:8000", [], []) is None
    assert check_bind("localhost:8000", [], []) is None
    assert check_bind("[::1]:8000", [], []) is None
    assert check_bind("0.0.0.0:8000", [], []) is not None
    assert check_bind("0.0.0.0:8000", ["t"], []) is None


def test_serve_refuses_open_mode_off_loopback(monkeypatch: Any) -> None:
    from click.testing import CliRunner

    from guard.cli import main

    monkeypatch.delenv("GUARD_ADMIN_TOKENS", raising=False)
    monkeypatch.delenv("GUARD_CLIENT_TOKENS", raising=False)
    r = CliRunner().invoke(main, ["serve", "--bind", "0.0.0.0:8999"])
    assert r.exit_code == 2 and "refusing to serve" in r.output


def test_readyz_needs_runnable_scripts_not_just_ping(app: Any) -> None:
    from redis_proc import RedisProcess

    from guard.server import create_app

    assert app.test_client().get("/readyz").json == {"status": "ok"}
    # This Redis answers PING but cannot run the lease scripts: not ready.
    crippled = RedisProcess(
        args=["--rename-command", "EVALSHA", "", "--rename-command", "EVAL", ""]
    )
    crippled.start()
    try:
        c = create_app({"REDIS_URL": crippled.url, "ADMIN_TOKENS": [ADMIN_TOKEN]}).test_client()
        assert crippled.client().ping()
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json["status"] == "unavailable"
    finally:
        crippled.cleanup()


def test_quarantine_setting_reaches_the_server_store(redis_server) -> None:  # type: ignore[no-untyped-def]
    """GUARD_QUARANTINE=1 turns the failover quarantine on for leases handed out over HTTP."""
    from guard.server import create_app

    on = create_app({"REDIS_URL": redis_server.url, "QUARANTINE": True, "TESTING": True})
    off = create_app({"REDIS_URL": redis_server.url, "TESTING": True})
    assert on.extensions["guard.store"].quarantine is True
    assert off.extensions["guard.store"].quarantine is False
