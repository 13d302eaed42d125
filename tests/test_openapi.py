"""/openapi.json is a valid OpenAPI 3.1 document that carries every bound, and a client that
validates against it agrees with the server on what is valid (issue 12, item 7).

The agreement test builds request bodies one field change away from a valid one — each bound
and just past it, wrong kinds, unknown and missing fields — validates each with
openapi-schema-validator's OAS 3.1 validator against the served document (what a generated
client does), sends it to the server, and checks: schema rejects ⇔ server answers 400."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from guard import keys
from guard.model import MAX_BURST, MAX_KEY_OVERRIDES, MAX_LIMIT, MAX_MEMBERS, MAX_RATE, MIN_RATE
from guard.server.schemas import MAX_WAIT_SECONDS

PYDANTIC_ONLY = {"ge", "le", "gt", "lt", "multiple_of", "max_digits", "decimal_places"}


@pytest.fixture
def doc(http: Any) -> dict[str, Any]:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}/{i}")


def test_document_validates_and_has_no_pydantic_keywords(doc: dict[str, Any]) -> None:
    validate(doc)  # raises on an invalid OpenAPI 3.1 document
    leftovers = [
        (p, k)
        for p, node in walk(doc["components"])
        for k in node
        if k in PYDANTIC_ONLY and "properties" not in p.rsplit("/", 1)[-1]
    ]
    assert not leftovers, leftovers


def prop(doc: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    p = doc["components"]["schemas"][model]["properties"][field]
    return dict(next((s for s in p.get("anyOf", [p]) if s.get("type") != "null"), p))


def test_every_numeric_bound_is_in_the_document(doc: dict[str, Any]) -> None:
    for model in ("NamespaceIn", "GroupIn", "FunctionIn", "ConfigDoc"):
        assert prop(doc, model, "max_concurrency") == {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_LIMIT,
        }
    assert prop(doc, "GroupIn", "reserved")["minimum"] == 0
    assert prop(doc, "GroupIn", "members")["maxItems"] == MAX_MEMBERS
    for model, field in (
        ("FunctionIn", "lease_ttl_seconds"),
        ("LeaseIn", "ttl_seconds"),
        ("RenewIn", "ttl_seconds"),
    ):
        p = prop(doc, model, field)
        assert p["minimum"] == keys.MIN_LEASE_TTL and p["maximum"] == keys.MAX_LEASE_TTL
    wait = prop(doc, "LeaseIn", "wait_seconds")
    assert wait["minimum"] == 0 and wait["maximum"] == MAX_WAIT_SECONDS
    assert prop(doc, "LeaseIn", "unavailable")["maxProperties"] == keys.MAX_PENDING_NAMES
    (counts,) = prop(doc, "LeaseIn", "unavailable")["patternProperties"].values()
    assert counts == {"type": "integer", "minimum": 1, "maximum": 1_000_000}


def test_key_and_rate_bounds_are_in_the_document(doc: dict[str, Any]) -> None:
    """Issue 14's fields carry their bounds (guard.model) in /openapi.json."""
    rate = {"type": "number", "minimum": MIN_RATE, "maximum": MAX_RATE}
    burst = {"type": "integer", "minimum": 1, "maximum": MAX_BURST}
    levels = {
        "NamespaceIn": ("rate_per_second", "rate_burst"),
        "ConfigDoc": ("rate_per_second", "rate_burst"),
        "GroupIn": ("rate_per_second", "rate_burst", "key_max_concurrency", "key_overrides"),
        "FunctionIn": (
            "rate_per_second",
            "rate_burst",
            "key_rate_per_second",
            "key_rate_burst",
            "key_max_concurrency",
            "key_overrides",
        ),
    }
    for model, fields in levels.items():
        for field in fields:
            p = prop(doc, model, field)
            if field.endswith("rate_per_second"):
                assert {k: p[k] for k in rate} == rate, (model, field)
            elif field.endswith("burst"):
                assert {k: p[k] for k in burst} == burst, (model, field)
            elif field == "key_max_concurrency":
                assert p == {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}
            else:
                assert p["maxProperties"] == MAX_KEY_OVERRIDES
                assert p["propertyNames"] == {"pattern": keys.NAME_RE.pattern}
                (cap,) = p["patternProperties"].values()
                assert cap == {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}
    key = prop(doc, "LeaseIn", "key")
    assert key["maxLength"] == 128 and key["pattern"] == keys.NAME_RE.pattern


# -- a client and the server agree --------------------------------------------------------

NUMBERS_INT = [-1, 0, 1, 2.0, 2.5, MAX_LIMIT, MAX_LIMIT + 1, "3", True, None, [1], {}]
NUMBERS_TTL = [-1, 0, 0.001, 1, 30, keys.MAX_LEASE_TTL, keys.MAX_LEASE_TTL + 1, "1", False, None]
NAMES = ["ok", "a.b-c_d", "_x", "-x", ".x", "", "a b", "x" * 128, "x" * 129, 5]
RATES = [MIN_RATE, MIN_RATE / 2, 0, -1, 0.5, 7, MAX_RATE, MAX_RATE + 1, "5", True, None, [1]]
BURSTS = [0, 1, 2.0, 2.5, MAX_BURST, MAX_BURST + 1, -1, "3", True, None]
OVERRIDES: list[Any] = [
    {},
    {"acme": 0},
    {"acme": MAX_LIMIT},
    {"acme": MAX_LIMIT + 1},
    {"acme": -1},
    {"acme": "1"},
    {"acme": 2.0},
    {"a b": 1},
    {"x" * 129: 1},
    {f"k{i}": 1 for i in range(MAX_KEY_OVERRIDES + 1)},
    [],
    None,
]


def rate_variants(base: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """A rate and its burst, each through its bounds; a burst alone (no rate) too."""
    rate, burst = f"{prefix}rate_per_second", f"{prefix}rate_burst"
    out = variants(base, rate, RATES)
    out += variants({**base, rate: 10}, burst, BURSTS)
    out += [{**base, burst: 5}]  # a burst of no rate: a cross-field 400
    return out


def variants(base: dict[str, Any], field: str, values: list[Any]) -> list[dict[str, Any]]:
    return [{**base, field: v} for v in values]


def ns_bodies() -> list[dict[str, Any]]:
    base = {"max_concurrency": 10}
    out = [base, {}, {**base, "x": 1}, *variants(base, "max_concurrency", NUMBERS_INT)]
    return out + rate_variants(base)


def key_variants(base: dict[str, Any]) -> list[dict[str, Any]]:
    out = variants(base, "key_max_concurrency", NUMBERS_INT)
    return out + variants(base, "key_overrides", OVERRIDES)


def group_bodies() -> list[dict[str, Any]]:
    base: dict[str, Any] = {"max_concurrency": None, "reserved": 0, "members": ["a"]}
    out = [base, {}, {"colour": 1}]
    out += variants(base, "max_concurrency", NUMBERS_INT)
    out += variants(base, "reserved", [-1, 0, 3, 2.0, 1.5, "1", True, None])
    out += variants(
        base,
        "members",
        [
            [],
            ["a", "a"],
            [n for n in NAMES if isinstance(n, str)][:4],
            ["-x"],
            [""],
            "a",
            None,
            [1],
        ],
    )
    out += variants(base, "mode", ["enforce", "shadow", "other", None, 1])
    out += key_variants(base) + rate_variants(base)
    out += [{**base, "key_rate_per_second": 1}]  # a function's field only
    out += variants(
        base,
        "selector",
        [
            None,
            {"tags": {"team": "data"}},
            {"stack": "s"},
            {"tags": {}},
            {"stack": ""},
            {"tags": {"a": 1}},
            {"stack": "s", "tags": {"a": "b"}},
            "s",
        ],
    )
    return out


def function_bodies() -> list[dict[str, Any]]:
    base: dict[str, Any] = {"max_concurrency": 5, "lease_ttl_seconds": 60}
    out = [base, {}, {"colour": 1}]
    out += variants(base, "max_concurrency", NUMBERS_INT)
    out += variants(base, "lease_ttl_seconds", NUMBERS_TTL)
    out += variants(base, "on_unavailable", ["open", "closed", None, "maybe", 0])
    out += variants(base, "mode", ["shadow", "", None])
    out += key_variants(base) + rate_variants(base) + rate_variants(base, "key_")
    return out


def lease_bodies() -> list[dict[str, Any]]:
    base: dict[str, Any] = {"function": "f"}
    out = [base, {}, {**base, "x": 1}]
    out += variants(base, "function", [*NAMES, None])
    out += variants(base, "ttl_seconds", NUMBERS_TTL)
    out += variants(base, "wait_seconds", [0, 0.01, MAX_WAIT_SECONDS + 1, -0.5, "0", True])
    out += variants(base, "lease_id", ["a" * 32, "A" * 32, "a" * 31, "g" * 32, 5, None])
    out += variants(base, "key", [*NAMES, None])
    out += variants(
        base,
        "unavailable",
        [
            {},
            {"f": 1},
            {"f": 0},
            {"f": 1_000_000},
            {"f": 1_000_001},
            {"f": "1"},
            {"f": True},
            {"f": 2.0},
            {"-x": 1},
            [],
        ],
    )
    return out


def renew_bodies() -> list[dict[str, Any]]:
    return [{}, {"x": 1}, *variants({}, "ttl_seconds", NUMBERS_TTL)]


def override_bodies() -> list[dict[str, Any]]:
    from guard.overrides import MAX_OVERRIDE_SECONDS, MAX_REASON

    base: dict[str, Any] = {"max_concurrency": 0, "seconds": 60}
    out = [base, {}, {**base, "x": 1}, {"max_concurrency": 1}, {"seconds": 5}]
    out += variants(base, "max_concurrency", [n for n in NUMBERS_INT if n is not None])
    out += variants(
        base,
        "seconds",
        [-1, 0, 0.5, MAX_OVERRIDE_SECONDS, MAX_OVERRIDE_SECONDS + 1, "5", True, None],
    )
    out += variants(base, "reason", ["", "why", "x" * MAX_REASON, "x" * (MAX_REASON + 1), 5])
    return out


def config_bodies() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{}, {"x": 1}]
    out += variants({}, "max_concurrency", NUMBERS_INT)
    out += rate_variants({})
    out += [{"groups": {n: {}}} for n in NAMES if isinstance(n, str) and n]
    out += [{"functions": {"f": b}} for b in function_bodies()]
    out += [{"groups": {"g": b}} for b in group_bodies()]
    out += variants({}, "functions", [[], None, "f"])
    return out


def schema_ok(doc: dict[str, Any], model: str, body: Any) -> bool:
    root = {"components": doc["components"], "$ref": f"#/components/schemas/{model}"}
    return not list(OAS31Validator(root).iter_errors(body))


# Rules between two fields or against stored settings are beyond what JSON Schema can say;
# docs/http.md lists them. A body the schema accepts may still be refused by one of these
# (400 naming the field, or 409), never by anything else.
CROSS_FIELD_400 = ("must not exceed max_concurrency", "(a burst of no rate)")


@pytest.mark.parametrize(
    ("model", "method", "path", "bodies"),
    [
        ("NamespaceIn", "put", "", ns_bodies),
        ("GroupIn", "put", "/groups/g", group_bodies),
        ("GroupIn", "patch", "/groups/g", group_bodies),
        ("FunctionIn", "put", "/functions/f", function_bodies),
        ("FunctionIn", "patch", "/functions/f", function_bodies),
        ("LeaseIn", "post", "/leases", lease_bodies),
        ("RenewIn", "post", "/leases/{lease}/renew", renew_bodies),
        ("ConfigDoc", "put", "/config", config_bodies),
        ("OverrideIn", "put", "/functions/f/override", override_bodies),
        ("OverrideIn", "put", "/groups/g/override", override_bodies),
    ],
)
def test_client_and_server_agree(
    http: Any, doc: dict[str, Any], ns: str, model: str, method: str, path: str, bodies: Any
) -> None:
    http.put(f"/v1/namespaces/{ns}/groups/g", json={"max_concurrency": 5})
    http.put(f"/v1/namespaces/{ns}/functions/f", json={"max_concurrency": 1000})
    disagree, seen = [], set()
    for body in bodies():
        url = f"/v1/namespaces/{ns}{path}"
        if "{lease}" in url:
            lease = http.post(f"/v1/namespaces/{ns}/leases", json={"function": "f"}).json
            url = url.format(lease=lease["lease_id"])
        r = getattr(http, method)(url, data=json.dumps(body), content_type="application/json")
        ok = schema_ok(doc, model, body)
        refused = r.status_code == 400
        seen.add(ok)
        if ok and refused and any(rule in r.json["detail"] for rule in CROSS_FIELD_400):
            continue
        if ok == refused:
            disagree.append((body, ok, r.status_code, r.json))
        if r.status_code == 201:
            http.delete(f"/v1/namespaces/{ns}/leases/{r.json['lease_id']}")
    assert not disagree, disagree
    assert seen == {True, False}  # both kinds were sent


def test_http_md_lists_every_route_field_and_bound(doc: dict[str, Any]) -> None:
    """docs/http.md is the reference a reader has: every route of the document, every request
    field, and each field's numeric bounds."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "http.md").read_text()
    for path, ops in doc["paths"].items():
        for method in ops:
            assert f"`{method.upper()} {path}" in text, (method, path)

    def num(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else str(v)

    for model in ("NamespaceIn", "GroupIn", "FunctionIn", "LeaseIn", "RenewIn", "OverrideIn"):
        for field in doc["components"]["schemas"][model]["properties"]:
            rows = [line for line in text.splitlines() if line.startswith(f"| `{field}` |")]
            assert rows, (model, field)
            s = prop(doc, model, field)
            s = next(iter(s.get("patternProperties", {}).values()), s)
            for key in ("minimum", "maximum", "exclusiveMinimum", "maxItems"):
                if key in s:
                    assert any(num(s[key]) in r for r in rows), (model, field, key)
