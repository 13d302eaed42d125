"""The one place that turns errors into HTTP responses: RFC 9457 problem details.

Every `guard.errors` class maps to one status code (`STATUS`); pydantic validation errors
become 400 naming the field; werkzeug's own HTTP errors (404 route, 405, 413 body over
1 MiB) keep their code but get the same body shape. Anything else is a 500 that is logged
and never leaks internals."""

from __future__ import annotations

import math
from typing import Any

from flask import Flask, Response, current_app, json, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .. import keys, problems
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
from ..model import NAME_RULE, NAMESPACE_RULE
from .schemas import LEASE_ID_RE

GENERIC_UNAVAILABLE = "the store is unreachable or failing; the cause is in the server log"


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


# The problem type (`guard.problems`: status, URI, title) per error class; the first match in
# MRO order wins.
STATUS: dict[type[BaseException], str] = {
    UsageError: "bad-request",
    LeaseNotHeld: "lease-not-held",
    NamespaceNotFound: "namespace-not-found",
    NotFound: "not-found",
    ConflictError: "conflict",
    Throttled: "throttled",
    StoreReset: "store-reset",
    GuardUnavailable: "store-unavailable",
}


def problem(slug: str, detail: str, **ext: Any) -> Response:
    body = problems.document(slug, detail, **ext)
    status = body["status"]
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 429 and "retry_after" in ext:
        resp.headers["Retry-After"] = str(max(1, math.ceil(float(ext["retry_after"]))))
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="guard"'
    return resp


def from_guard_error(exc: GuardError) -> Response:
    if isinstance(exc, AuthError):
        return problem("unauthorized" if exc.status == 401 else "forbidden", str(exc))
    slug = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), "internal")
    ext: dict[str, Any] = {"field": getattr(exc, "field", None)}
    if isinstance(exc, Throttled):
        ext = {
            "scope": exc.scope,
            "function": exc.function,
            "retry_after": exc.retry_after,
            "on_unavailable": getattr(exc, "on_unavailable", None),
        }
    detail = str(exc)
    if isinstance(exc, GuardUnavailable) and not isinstance(exc, StoreReset):
        # the cause names hosts and ports: it goes to the log, the caller gets a generic line
        actor = request.environ.get("guard.actor", "-")
        current_app.logger.warning(
            "store unavailable (%s %s, actor %s): %s", request.method, request.path, actor, exc
        )
        detail = GENERIC_UNAVAILABLE
    return problem(slug, detail, **ext)


# patterns of the request models, in words
PATTERN_RULES = {
    keys.NAME_RE.pattern: NAME_RULE,
    keys.NAMESPACE_RE.pattern: NAMESPACE_RULE,
    LEASE_ID_RE: "must be 32 hex digits (128 bits)",
}


def from_validation_error(exc: ValidationError) -> Response:
    err = exc.errors(include_url=False)[0]
    # a union's branch appears in the location under its model's name: not a field
    # (a bad key of a map: its loc ends with "[key]"; the field is the map entry)
    loc = [str(p) for p in err["loc"] if not str(p)[:1].isupper() and p != "[key]"]
    field = ".".join(loc) or None
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "string_pattern_mismatch":
        pattern = str((err.get("ctx") or {}).get("pattern", ""))
        msg = PATTERN_RULES.get(pattern, f"must match {pattern}")
    else:
        msg = err["msg"].removeprefix("Value error, ")
    detail = f"{field}: {msg}" if field else msg
    return problem("bad-request", detail, field=field)


def from_http_exception(exc: HTTPException) -> Response:
    code = exc.code or 500
    known = problems.BY_STATUS.get(code)
    if known is not None:
        resp = problem(known.slug, exc.description or known.title)
    else:  # RFC 9457: a status with no type of its own is about:blank, titled by its phrase
        body = {
            "type": "about:blank",
            "title": exc.name,
            "status": code,
            "detail": exc.description or exc.name,
        }
        resp = Response(json.dumps(body), status=code, mimetype="application/problem+json")
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
        return problem("internal", "unexpected server error")
