"""``/openapi.json``: the OpenAPI 3.1 document, generated from the pydantic models in
`guard.server.schemas` (the same ones that validate requests) and the route table below."""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__, keys
from .. import overrides as ov
from . import schemas as s

NS = "/v1/namespaces/{ns}"
# path -> method -> (summary, request model, (status, response model or None), extra statuses)
Op = tuple[str, type[BaseModel] | None, tuple[int, type[BaseModel] | None], tuple[int, ...]]
ADMIN_W = (400, 409, 413)
ROUTES: dict[str, dict[str, Op]] = {
    "/v1/namespaces": {"get": ("List namespaces", None, (200, s.NamespaceList), ())},
    NS: {
        "get": ("The account-wide limit", None, (200, s.NamespaceOut), (400,)),
        "put": ("Set the account-wide limit", s.NamespaceIn, (200, s.NamespaceOut), ADMIN_W),
    },
    f"{NS}/usage": {"get": ("Live in-use and limits", None, (200, s.UsageOut), (400,))},
    f"{NS}/config": {
        "get": ("All settings of a namespace", None, (200, s.ConfigDoc), (400,)),
        "put": ("Replace all settings atomically", s.ConfigDoc, (200, s.ConfigDoc), ADMIN_W),
    },
    f"{NS}/groups": {"get": ("List groups", None, (200, s.GroupList), (400,))},
    f"{NS}/groups/{{name}}": {
        "get": ("A group", None, (200, s.GroupOut), (400, 404)),
        "put": ("Create or replace a group", s.GroupIn, (200, s.GroupOut), ADMIN_W),
        "patch": ("Change some fields of a group", s.GroupIn, (200, s.GroupOut), (*ADMIN_W, 404)),
        "delete": ("Delete a group", None, (204, None), (400, 404)),
    },
    f"{NS}/functions": {"get": ("List functions", None, (200, s.FunctionList), (400,))},
    f"{NS}/functions/{{name}}": {
        "get": ("A function", None, (200, s.FunctionOut), (400, 404)),
        "put": ("Create or replace a function", s.FunctionIn, (200, s.FunctionOut), ADMIN_W),
        "patch": ("Change some fields", s.FunctionIn, (200, s.FunctionOut), (*ADMIN_W, 404)),
        "delete": ("Delete a function", None, (204, None), (400, 404)),
    },
    f"{NS}/functions/{{name}}/keys": {
        "get": ("Top keys by in use at a function", None, (200, s.KeyUsageOut), (400,)),
    },
    f"{NS}/groups/{{name}}/keys": {
        "get": ("Top keys by in use in a group", None, (200, s.KeyUsageOut), (400, 404)),
    },
    f"{NS}/overrides": {"get": ("Overrides in force", None, (200, s.OverrideList), (400,))},
    f"{NS}/functions/{{name}}/override": {
        "put": (
            "Override a function's max for a while",
            s.OverrideIn,
            (200, s.OverrideOut),
            ADMIN_W,
        ),
        "delete": ("End a function's override", None, (204, None), (400, 404)),
    },
    f"{NS}/groups/{{name}}/override": {
        "put": ("Override a group's max for a while", s.OverrideIn, (200, s.OverrideOut), ADMIN_W),
        "delete": ("End a group's override", None, (204, None), (400, 404)),
    },
    f"{NS}/audit": {"get": ("Latest config writes", None, (200, s.AuditList), (400,))},
    f"{NS}/leases": {
        "post": ("Acquire a lease", s.LeaseIn, (201, s.LeaseOut), (400, 404, 409, 413, 429)),
        "get": ("Held leases", None, (200, s.LeaseList), (400,)),
    },
    f"{NS}/leases/{{lease_id}}/renew": {
        "post": ("Renew a held lease", s.RenewIn, (200, s.RenewalOut), (400, 404, 413)),
    },
    f"{NS}/leases/{{lease_id}}": {"delete": ("Release a lease", None, (204, None), (400, 404))},
}
OPS = {
    "/healthz": "Process is up",
    "/readyz": "Redis reachable and the lease scripts runnable",
}
MODELS = [
    s.NamespaceIn,
    s.GroupIn,
    s.FunctionIn,
    s.LeaseIn,
    s.RenewIn,
    s.NamespaceOut,
    s.NamespaceList,
    s.GroupOut,
    s.GroupList,
    s.FunctionOut,
    s.FunctionList,
    s.UsageOut,
    s.LeaseOut,
    s.RenewalOut,
    s.LeaseList,
    s.Problem,
    s.Health,
    s.ConfigDoc,
    s.OverrideIn,
    s.OverrideOut,
    s.OverrideList,
    s.AuditList,
    s.KeyUsageOut,
]
PARAMS = {
    "ns": keys.NAMESPACE_RE.pattern,
    "name": keys.NAME_RE.pattern,
    "lease_id": "^[0-9a-fA-F]{32}$",
}


BRACES = str.maketrans("", "", "{}")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _problem(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": "problem details (RFC 9457)",
        "content": {"application/problem+json": {"schema": _ref(s.Problem)}},
    }
    if status == 429:
        out["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return out


def _operation(path: str, method: str, op: Op) -> dict[str, Any]:
    summary, req, (ok, resp), extra = op
    leases = "/leases" in path
    doc: dict[str, Any] = {
        "summary": summary,
        "operationId": method + "_" + path.strip("/").replace("/", "_").translate(BRACES),
        "tags": ["leases" if leases else "admin"],
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string", "pattern": rx}}
            for p, rx in PARAMS.items()
            if f"{{{p}}}" in path
        ],
        "responses": {
            str(ok): {"description": "success"}
            if resp is None
            else {"description": "success", "content": {"application/json": {"schema": _ref(resp)}}}
        },
    }
    if path.endswith("/leases") and method == "get":
        doc["parameters"].append(
            {
                "name": "function",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "pattern": keys.NAME_RE.pattern},
            }
        )
    if path.endswith("/keys"):
        doc["parameters"].append(
            {
                "name": "top",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": keys.MAX_TOP_KEYS},
            }
        )
    if path.endswith("/audit"):
        doc["parameters"].append(
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": ov.AUDIT_MAX_LIMIT},
            }
        )
    if req is not None:
        doc["requestBody"] = {
            "required": req is not s.RenewIn,
            "content": {"application/json": {"schema": _ref(req)}},
        }
    for status in sorted({*extra, 401, 403, 503}):
        doc["responses"][str(status)] = _problem(status)
    return doc


@cache
def document() -> dict[str, Any]:
    _, top = models_json_schema(
        [(cast(type[BaseModel], m), "validation") for m in MODELS],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {
        path: {m: _operation(path, m, op) for m, op in ops.items()} for path, ops in ROUTES.items()
    }
    for path, summary in OPS.items():
        paths[path] = {
            "get": {
                "summary": summary,
                "operationId": path.strip("/"),
                "tags": ["ops"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": _ref(s.Health)}},
                    },
                    "503": {
                        "description": "not ready",
                        "content": {"application/json": {"schema": _ref(s.Health)}},
                    },
                },
            }
        }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics (text exposition format)",
            "operationId": "metrics",
            "tags": ["ops"],
            "security": [],
            "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "guard",
            "version": __version__,
            "description": "Concurrency guard: admin and lease API.",
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
