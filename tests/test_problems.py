"""One scheme for problem types (issue 12, item 9): every problem document guard produces —
the HTTP API and the Lambda adapters alike — takes its ``type`` and ``title`` from
`guard.problems`, one title per type; messages state the rule; integer fields coerce alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import guard
import guard.aws
from guard import problems
from guard.aws.adapters import throttled_response, unavailable_response
from guard.errors import GuardUnavailable, Throttled

ROOT = Path(__file__).resolve().parent.parent


def p(ns: str, rest: str = "") -> str:
    return f"/v1/namespaces/{ns}{rest}"


def check(doc: dict[str, Any], status: int) -> str:
    """The document follows the one scheme; returns its type's slug."""
    assert doc["status"] == status
    assert doc["type"].startswith(problems.PREFIX), doc
    slug = doc["type"][len(problems.PREFIX) :]
    assert problems.TYPES[slug].status == status
    assert doc["title"] == problems.TYPES[slug].title
    return slug


def test_every_http_error_uses_the_one_scheme(http: Any, app: Any, ns: str) -> None:
    seen = {}
    r = http.put(p(ns), json={"max_concurrency": -1})
    seen[check(r.json, 400)] = r
    r = app.test_client().get(p(ns))  # no token
    seen[check(r.json, 401)] = r
    from live import CLIENT_TOKEN

    r = app.test_client().get(p(ns), headers={"Authorization": f"Bearer {CLIENT_TOKEN}"})
    seen[check(r.json, 403)] = r
    r = http.get(p(ns, "/groups/nope"))
    seen[check(r.json, 404)] = r
    r = http.get("/no/such/route")
    assert check(r.json, 404) == "not-found"
    r = http.delete(p(ns, "/leases/" + "0" * 32))
    assert check(r.json, 404) == "lease-not-held"
    r = http.post(p(ns))
    seen[check(r.json, 405)] = r
    assert "PUT" in r.headers["Allow"]
    http.put(p(ns), json={"max_concurrency": 1})
    r = http.put(p(ns, "/groups/g"), json={"reserved": 5})
    seen[check(r.json, 409)] = r
    r = http.put(
        p(ns), data=b"{" + b" " * (1024 * 1024 + 10) + b"}", content_type="application/json"
    )
    seen[check(r.json, 413)] = r
    http.put(p(ns, "/functions/f"), json={"max_concurrency": 0})
    r = http.post(p(ns, "/leases"), json={"function": "f"})
    seen[check(r.json, 429)] = r
    from openapi_schema_validator import OAS31Validator

    from guard.server.openapi import document

    schema = {**document(), "$ref": "#/components/schemas/Problem"}
    for r in seen.values():  # each as /openapi.json describes it
        OAS31Validator(schema).validate(r.json)
    assert set(seen) >= {
        "bad-request",
        "unauthorized",
        "forbidden",
        "not-found",
        "method-not-allowed",
        "conflict",
        "payload-too-large",
        "throttled",
    }


def test_adapters_use_the_same_types_and_titles() -> None:
    body = json.loads(throttled_response(Throttled("f", "function", 0.5))["body"])
    assert check(body, 429) == "throttled"
    body = json.loads(unavailable_response(GuardUnavailable("down", "f"))["body"])
    assert check(body, 503) == "store-unavailable"


def test_one_title_per_type_and_every_type_documented() -> None:
    text = (ROOT / "docs" / "http.md").read_text()
    for slug, t in problems.TYPES.items():
        assert t.uri == problems.PREFIX + slug
        assert f"`{slug}`" in text, slug
    statuses = [
        line.split("|")[1].strip()
        for line in text.splitlines()
        if line.startswith("| 4") or line.startswith("| 5")
    ]
    assert "405" in statuses and "413" in statuses


@pytest.mark.parametrize("name", ["-x", ".x", "a b", "x" * 129, ""])
def test_a_refused_name_is_told_the_rule(http: Any, ns: str, name: str) -> None:
    with pytest.raises(guard.UsageError) as ei:
        guard.model.check_name(name, "function")
    msg = str(ei.value)
    assert "start with a letter, digit or '_'" in msg and "128" in msg
    if name:
        r = http.put(p(ns, f"/functions/{name}"), json={})
        assert r.status_code in (400, 404) and r.json["type"].startswith(problems.PREFIX)


INTEGER_FIELDS = [
    (lambda ns: p(ns), "put", lambda v: {"max_concurrency": v}, "max_concurrency"),
    (lambda ns: p(ns, "/groups/g"), "put", lambda v: {"reserved": v}, "reserved"),
    (lambda ns: p(ns, "/functions/f"), "put", lambda v: {"max_concurrency": v}, "max_concurrency"),
    (
        lambda ns: p(ns, "/leases"),
        "post",
        lambda v: {"function": "f", "unavailable": {"f": v}},
        "unavailable.f",
    ),
]


@pytest.mark.parametrize(("path", "method", "make", "field"), INTEGER_FIELDS)
def test_every_integer_field_coerces_alike(
    http: Any, ns: str, path: Any, method: str, make: Any, field: str
) -> None:
    """Strict about kind, lax about spelling: a JSON number with no fraction is an integer
    (as JSON Schema says, so a generated client agrees); strings and booleans never are."""
    assert http.put(p(ns), json={"max_concurrency": 100}).status_code == 200  # leases need it
    send = getattr(http, method)
    for bad in ("100", "1", True, False, 1.5, None if field != "max_concurrency" else [1]):
        r = send(path(ns), json=make(bad))
        assert r.status_code == 400 and r.json["field"] == field, (bad, r.json)
    for good in (1, 2.0):
        assert send(path(ns), json=make(good)).status_code in (200, 201), good


@pytest.mark.parametrize(
    ("path", "make"),
    [
        (lambda ns: p(ns, "/functions/f"), lambda v: {"lease_ttl_seconds": v}),
        (lambda ns: p(ns, "/leases"), lambda v: {"function": "f", "wait_seconds": v}),
    ],
)
def test_number_fields_refuse_strings_and_booleans(
    http: Any, ns: str, path: Any, make: Any
) -> None:
    assert http.put(p(ns), json={"max_concurrency": 100}).status_code == 200  # leases need it
    method = http.post if path(ns).endswith("/leases") else http.put
    for bad in ("1", "1.5", True):
        assert method(path(ns), json=make(bad)).status_code == 400, bad
    assert method(path(ns), json=make(1)).status_code in (200, 201)


@pytest.mark.parametrize(
    ("path", "body", "field", "rule"),
    [
        ("/leases", {"function": "-x"}, "function", "start with a letter, digit or '_'"),
        ("/groups/g", {"members": ["ok", "-x"]}, "members.1", "start with a letter, digit or '_'"),
        ("/leases", {"function": "f", "lease_id": "zz"}, "lease_id", "32 hex digits"),
        ("/groups/g", {"selector": {"tags": {}}}, "selector.tags", "at least 1"),
        ("", {"max_concurrency": "100"}, "max_concurrency", "must be a number, not a string"),
    ],
)
def test_body_errors_state_the_rule_in_words(
    http: Any, ns: str, path: str, body: Any, field: str, rule: str
) -> None:
    r = (http.post if path == "/leases" else http.put)(p(ns, path), json=body)
    assert r.status_code == 400 and r.json["field"] == field, r.json
    assert rule in r.json["detail"] and "pattern" not in r.json["detail"], r.json
    assert "Value error" not in r.json["detail"]


def test_a_limits_file_coerces_integers_like_the_api() -> None:
    from guard.config_file import parse

    for bad in ("100", True, 1.5):
        with pytest.raises(guard.UsageError) as ei:
            parse({"namespace": "n", "functions": {"f": {"max_concurrency": bad}}})
        assert ei.value.field == "functions.f.max_concurrency"
    cfg = parse({"namespace": "n", "max_concurrency": 2.0, "groups": {"g": {"reserved": 1.0}}})
    assert cfg["n"].max_concurrency == 2 and isinstance(cfg["n"].max_concurrency, int)
    assert cfg["n"].groups["g"].reserved == 1
