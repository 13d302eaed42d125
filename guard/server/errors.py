"""The one place that turns errors into HTTP responses: RFC 9457 problem details.

Every `guard.errors` class maps to one status code (`STATUS`); pydantic validation errors
become 400 naming the field; werkzeug's own HTTP errors (404 route, 405, 413 body over
1 MiB) keep their code but get the same body shape. Anything else is a 500 that is logged
and never leaks internals."""

from __future__ import annotations

import math
from typing import Any

from flask import Flask, Response, current_app, json
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from ..errors import (
    ConflictError,
    GuardError,
    GuardUnavailable,
    NamespaceNotFound,
    NotFound,
    StoreReset,
    Throttled,
    UsageError,
)

TYPE_BASE = "https://github.com/guard/guard/blob/main/docs/http.md#"


class AuthError(GuardError):
    """Missing or unknown bearer token (401), or a token without the route's scope (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class LeaseNotHeld(NotFound):
    """Renew or release of a lease that is not held (expired, released or never granted)."""


class Refused(Throttled):
    """A lease refusal over HTTP; also carries the function's stored on_unavailable policy so
    the HTTP-mode SDK remembers it exactly as the Redis mode does."""

    def __init__(self, function: str, scope: str, retry_after: float, on_unavailable: str):
        super().__init__(function, scope, retry_after)
        self.on_unavailable = on_unavailable


# (status, type slug, title) per error class; the first match in MRO order wins.
STATUS: dict[type[BaseException], tuple[int, str, str]] = {
    UsageError: (400, "bad-request", "Bad request"),
    LeaseNotHeld: (404, "lease-not-held", "Lease not held"),
    NamespaceNotFound: (404, "namespace-not-found", "Namespace not found"),
    NotFound: (404, "not-found", "Not found"),
    ConflictError: (409, "conflict", "Conflict"),
    Throttled: (429, "throttled", "Throttled"),
    StoreReset: (503, "store-reset", "Store reset"),
    GuardUnavailable: (503, "store-unavailable", "Store unavailable"),
}


def problem(status: int, slug: str, title: str, detail: str, **ext: Any) -> Response:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in ext.items() if v is not None})
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 429 and "retry_after" in ext:
        resp.headers["Retry-After"] = str(max(1, math.ceil(float(ext["retry_after"]))))
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="guard"'
    return resp


def from_guard_error(exc: GuardError) -> Response:
    if isinstance(exc, AuthError):
        slug = "unauthorized" if exc.status == 401 else "forbidden"
        return problem(exc.status, slug, slug.capitalize(), str(exc))
    for cls in type(exc).__mro__:
        if cls in STATUS:
            status, slug, title = STATUS[cls]
            break
    else:
        status, slug, title = 500, "internal", "Internal error"
    ext: dict[str, Any] = {"field": getattr(exc, "field", None)}
    if isinstance(exc, Throttled):
        ext = {
            "scope": exc.scope,
            "function": exc.function,
            "retry_after": exc.retry_after,
            "on_unavailable": getattr(exc, "on_unavailable", None),
        }
    if isinstance(exc, GuardUnavailable):
        current_app.logger.warning("store unavailable: %s", exc)
    return problem(status, slug, title, str(exc), **ext)


def from_validation_error(exc: ValidationError) -> Response:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
    detail = f"{field}: {msg}" if field else msg
    return problem(400, "bad-request", "Bad request", detail, field=field)


def from_http_exception(exc: HTTPException) -> Response:
    code = exc.code or 500
    name = exc.name or "Error"
    resp = problem(code, name.lower().replace(" ", "-"), name, exc.description or name)
    for key, val in exc.get_headers():  # e.g. Allow on 405
        if key.lower() != "content-type":
            resp.headers[key] = val
    return resp


def register(app: Flask) -> None:
    app.register_error_handler(GuardError, from_guard_error)
    app.register_error_handler(ValidationError, from_validation_error)
    app.register_error_handler(HTTPException, from_http_exception)

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        return problem(500, "internal", "Internal error", "unexpected server error")
