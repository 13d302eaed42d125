"""The operator console: one static page at ``/`` and the JSON snapshot it polls.

The page (``static/console.{html,js,css}``) has no external assets and no build step. It asks
for a bearer token (kept in the tab's sessionStorage) unless the server is in open loopback
mode, then polls ``/console/state`` every second. Any valid token may read the snapshot of
the namespaces it is scoped to; only an admin token gets the audit entries and the page's
admin controls, which call the ordinary admin routes (so the server, not the page, decides
what a token may change). Every value from the API is put into the page as text, never as
markup, and a strict Content-Security-Policy (no inline script or style) backs that up."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from .. import overrides as ov
from .. import wire
from ..admin import counter_fields, usage_of
from ..errors import NotFound
from ..model import Config, check_namespace
from .auth import visible
from .common import actor, store
from .errors import AuthError

bp = Blueprint("console", __name__)
STATIC = os.path.join(os.path.dirname(__file__), "static")
FILES = {"console.html": "text/html", "console.js": "text/javascript", "console.css": "text/css"}

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
AUDIT_SHOWN = 15  # latest audit entries in a snapshot


@bp.after_app_request
def _headers(resp: Response) -> Response:
    if request.blueprint == "console":
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
    return resp


@cache
def _file(name: str) -> bytes:
    with open(os.path.join(STATIC, name), "rb") as f:
        return f.read()


@bp.get("/")
def page() -> Response:
    return Response(_file("console.html"), mimetype=FILES["console.html"])


@bp.get("/console/static/<name>")
def static_file(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"no console file {name!r}", "file")
    return Response(_file(name), mimetype=FILES[name])


def counters(used: dict[str, str]) -> dict[str, dict[str, int]]:
    """The namespace's cumulative counters by kind: throttles and shadow throttles keyed
    ``<fn>|<scope>``, expired leases and fail-open runs keyed by function."""
    kinds = {
        wire.THROTTLES: "throttles",
        wire.SHADOW_THROTTLES: "shadow",
        wire.EXPIRED: "expired",
        wire.UNAVAILABLE: "fail_open",
    }
    out: dict[str, dict[str, int]] = {kind: {} for kind in kinds.values()}
    for field, value in used.items():
        kind = kinds.get(field[:2])
        if kind:
            out[kind][field[2:]] = max(0, int(value or 0))
    return out


@bp.get("/console/state")
def state() -> Response:
    """Everything the page shows for one namespace (``?ns=``, default the first visible)."""
    token = g.get("guard_token")
    role = token.role if token is not None else "admin"  # open loopback mode
    names = visible(store().namespaces())
    ns = request.args.get("ns") or (names[0] if names else "default")
    check_namespace(ns)
    if token is not None and not token.allows(ns):
        raise AuthError(f"token {token.name!r} may not use namespace {ns!r}", 403)
    s = store()
    fields = s.read_config(ns)
    cfg = Config.from_fields(fields)
    now = s.server_time_ms()
    active = ov.active(fields, now)
    used = s.usage_fields(ns, counter_fields(cfg, active))  # bounded (docs/guarantees.md)
    doc: dict[str, Any] = {
        "whoami": {
            "name": actor(),
            "role": role,
            "open_mode": not current_app.extensions["guard.tokens"],
        },
        "namespaces": names,
        "namespace": ns,
        "server_time": now / 1000,
        "usage": usage_of(cfg, used, active, now),
        "overrides": [o.doc(now) for o in active],
        "counters": counters(used),
        "audit": None,
    }
    if role == "admin":
        entries = s.audit_entries(ns, AUDIT_SHOWN)
        doc["audit"] = [ov.entry_doc(i, f) for i, f in entries]
    return jsonify(doc)
