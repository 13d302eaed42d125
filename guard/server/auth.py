"""Bearer tokens with two scopes: ``admin`` (every route) and ``client`` (lease routes only).

Tokens come from ``GUARD_ADMIN_TOKENS`` / ``GUARD_CLIENT_TOKENS`` (comma-separated) and are
compared with `hmac.compare_digest` against every configured token, so timing reveals
neither a token nor which list matched. With no token configured the app is *open*; it is
`guard serve` that allows open mode only on a loopback bind (see `check_bind`)."""

from __future__ import annotations

import hmac
import ipaddress
import socket

from flask import current_app, request

from .errors import AuthError

OPEN = ("healthz", "readyz", "openapi", "metrics")  # endpoints (ops blueprint) without a token


def split_tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def _matches(token: str, tokens: list[str]) -> bool:
    hit = False
    for t in tokens:  # no short-circuit: compare against every token
        hit |= hmac.compare_digest(token.encode(), t.encode())
    return hit


def scope_of(token: str) -> str | None:
    cfg = current_app.config
    if _matches(token, cfg["ADMIN_TOKENS"]):
        return "admin"
    if _matches(token, cfg["CLIENT_TOKENS"]):
        return "client"
    return None


def authorize() -> None:
    """before_request hook: raise AuthError unless the request may reach its endpoint."""
    cfg = current_app.config
    endpoint = request.endpoint or ""
    blueprint, _, name = endpoint.partition(".")
    if blueprint == "ops" and not (name == "metrics" and cfg["METRICS_TOKEN_REQUIRED"]):
        return
    if not cfg["ADMIN_TOKENS"] and not cfg["CLIENT_TOKENS"]:
        return  # open mode (loopback only; enforced by guard serve)
    if not endpoint:
        return  # unknown route: let the 404 through
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token (Authorization: Bearer <token>)", 401)
    scope = scope_of(token.strip())
    if scope is None:
        raise AuthError("unknown token", 401)
    if scope != "admin" and blueprint != "leases":
        raise AuthError("this route needs an admin token; a client token may only use leases", 403)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def check_bind(bind: str, admin_tokens: list[str], client_tokens: list[str]) -> str | None:
    """None when serving is allowed; else why not. Open mode (no tokens) needs loopback."""
    if admin_tokens or client_tokens:
        return None
    host = bind.rsplit(":", 1)[0] if ":" in bind else bind
    if bind.startswith("unix:") or is_loopback(host):
        return None
    return (
        f"refusing to serve on {bind} without tokens: set GUARD_ADMIN_TOKENS (and "
        "GUARD_CLIENT_TOKENS), or bind to 127.0.0.1"
    )
