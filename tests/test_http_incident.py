"""HTTP routes for overrides and the audit log (admin only), and the console's page and
snapshot: security headers, client tokens read-only, the actor is the token's name."""

from __future__ import annotations

from typing import Any

import pytest
from live import CLIENT_TOKEN

import guard
from guard import overrides as ov


def put_override(http: Any, ns: str, kind: str, name: str, body: Any) -> Any:
    return http.put(f"/v1/namespaces/{ns}/{kind}s/{name}/override", json=body)


def test_override_routes(http: Any, ns: str, g: guard.Guard) -> None:
    http.put(f"/v1/namespaces/{ns}/functions/ingest", json={"max_concurrency": 4})
    r = put_override(
        http,
        ns,
        "function",
        "ingest",
        {"max_concurrency": 0, "seconds": 60, "reason": "incident 42"},
    )
    assert r.status_code == 200, r.json
    assert r.json["actor"] == "GUARD_ADMIN_TOKENS[0]" and r.json["max_concurrency"] == 0
    with pytest.raises(guard.Throttled):
        g.acquire("ingest", ttl=30)
    use = http.get(f"/v1/namespaces/{ns}/usage").json
    assert use["functions"]["ingest"]["override"]["reason"] == "incident 42"
    assert [o["name"] for o in http.get(f"/v1/namespaces/{ns}/overrides").json["overrides"]] == [
        "ingest"
    ]
    assert http.delete(f"/v1/namespaces/{ns}/functions/ingest/override").status_code == 204
    assert http.delete(f"/v1/namespaces/{ns}/functions/ingest/override").status_code == 404
    g.acquire("ingest", ttl=30).release()
    r = put_override(http, ns, "group", "etl", {"max_concurrency": 1, "seconds": 5})
    assert r.status_code == 200 and r.json["kind"] == "group"
    entries = http.get(f"/v1/namespaces/{ns}/audit?limit=3").json["entries"]
    assert [e["action"] for e in entries] == ["override", "clear_override", "override"]
    assert entries[0]["actor"] == "GUARD_ADMIN_TOKENS[0]"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_concurrency": -1, "seconds": 5}, "max_concurrency"),
        ({"max_concurrency": True, "seconds": 5}, "max_concurrency"),
        ({"seconds": 5}, "max_concurrency"),
        ({"max_concurrency": 1}, "seconds"),
        ({"max_concurrency": 1, "seconds": 0}, "seconds"),
        ({"max_concurrency": 1, "seconds": ov.MAX_OVERRIDE_SECONDS + 1}, "seconds"),
        ({"max_concurrency": 1, "seconds": 5, "reason": "x" * (ov.MAX_REASON + 1)}, "reason"),
        ({"max_concurrency": 1, "seconds": 5, "colour": "red"}, "colour"),
    ],
)
def test_override_bad_bodies(http: Any, ns: str, body: Any, field: str) -> None:
    r = put_override(http, ns, "function", "ingest", body)
    assert r.status_code == 400
    assert r.content_type == "application/problem+json"
    assert field in r.json["detail"] or r.json.get("field") == field
    assert http.get(f"/v1/namespaces/{ns}/overrides").json["overrides"] == []


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-1"])
def test_audit_limit_bounds(http: Any, ns: str, limit: str) -> None:
    r = http.get(f"/v1/namespaces/{ns}/audit?limit={limit}")
    assert r.status_code == 400 and r.json["field"] == "limit"


def test_client_token_may_not_override_or_read_audit(app: Any, ns: str) -> None:
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {CLIENT_TOKEN}"
    body = {"max_concurrency": 0, "seconds": 5}
    assert c.put(f"/v1/namespaces/{ns}/functions/f/override", json=body).status_code == 403
    assert c.delete(f"/v1/namespaces/{ns}/groups/g/override").status_code == 403
    assert c.get(f"/v1/namespaces/{ns}/audit").status_code == 403
    assert c.get(f"/v1/namespaces/{ns}/overrides").status_code == 403
    s = c.get(f"/console/state?ns={ns}")
    assert s.status_code == 200
    assert s.json["whoami"]["role"] == "client" and s.json["audit"] is None


def test_console_page_and_state(app: Any, http: Any, ns: str, g: guard.Guard) -> None:
    anon = app.test_client()
    page = anon.get("/")
    assert page.status_code == 200 and b"console.js" in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert anon.get("/console/static/console.js").status_code == 200
    assert anon.get(f"/console/state?ns={ns}").status_code == 401
    g.admin.put_function("ingest", max_concurrency=2)
    g.acquire("ingest", ttl=30)
    g.acquire("ingest", ttl=30)
    with pytest.raises(guard.Throttled):
        g.acquire("ingest", ttl=30)
    s = http.get(f"/console/state?ns={ns}").json
    assert s["usage"] == g.admin.usage()
    assert s["counters"]["throttles"] == {"ingest|function": 1}
    assert s["whoami"]["role"] == "admin" and s["audit"][0]["action"] == "put_function"
    assert http.get("/console/state?ns=bad%20ns").status_code == 400


def test_console_open_mode_host_check(redis_server: Any) -> None:
    from guard.server import create_app

    app = create_app(
        {"TESTING": True, "REDIS_URL": redis_server.url, "ADMIN_TOKENS": [], "CLIENT_TOKENS": []}
    )
    c = app.test_client()
    assert c.get("/", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert c.get("/", headers={"Host": "evil.example:8000"}).status_code == 403
    assert c.get("/console/state", headers={"Host": "evil.example"}).status_code == 403
    s = c.get("/console/state", headers={"Host": "localhost"}).json
    assert s["whoami"] == {"name": "open-mode", "role": "admin", "open_mode": True}


def test_console_state_respects_token_scopes(redis_server: Any, tmp_path: Any, ns: str) -> None:
    import hashlib

    from guard.server import create_app

    sha = hashlib.sha256(b"scoped-client").hexdigest()
    path = tmp_path / "tokens.yaml"
    path.write_text(
        f"tokens:\n  - {{name: billing, role: client, namespaces: [{ns}], sha256: {sha}}}\n"
    )
    app = create_app(
        {
            "TESTING": True,
            "REDIS_URL": redis_server.url,
            "ADMIN_TOKENS": [],
            "CLIENT_TOKENS": [],
            "TOKENS_FILE": str(path),
        }
    )
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = "Bearer scoped-client"
    assert c.get(f"/console/state?ns={ns}").json["whoami"]["name"] == "billing"
    r = c.get("/console/state?ns=someone-else")
    assert r.status_code == 403 and r.content_type == "application/problem+json"
