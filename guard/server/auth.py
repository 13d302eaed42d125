"""Bearer tokens: who may call which route, in which namespaces.

A token has a *name* (the actor that logs record), a *role* — ``admin`` (every route) or
``client`` (acquire, renew and release a lease, and read the console's snapshot of its
namespaces; not list leases) — and optionally the
*namespaces* it may touch (absent = all). Tokens come from:

- ``GUARD_TOKENS_FILE``: YAML ``tokens: [{name, role, namespaces?, sha256}]``; ``sha256`` is
  the hex SHA-256 of the token, so the file holds no secret a reader could present;
- ``GUARD_ADMIN_TOKENS`` / ``GUARD_CLIENT_TOKENS`` (comma-separated): unscoped tokens named
  ``GUARD_ADMIN_TOKENS[i]`` / ``GUARD_CLIENT_TOKENS[i]``.

The presented token is hashed once and compared with `hmac.compare_digest` against every
entry, without stopping at a match, so timing reveals neither a token nor which entry
matched. With no token configured the app is *open*; `guard serve` allows that only on a
loopback bind (`check_bind`), and the app then serves only requests whose ``Host`` is a
loopback name (`loopback_host`), so a web page whose name resolves to 127.0.0.1 (DNS
rebinding) cannot drive it through a browser."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from flask import current_app, g, request

from ..errors import UsageError
from ..model import check_namespace
from .errors import AuthError

ROLES = ("admin", "client")
ADMIN_ONLY_LEASE_ROUTES = ("leases.list_leases",)  # a client token may not list leases
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str
    namespaces: frozenset[str] | None  # None: every namespace
    digest: bytes  # sha256 of the token

    def allows(self, ns: str) -> bool:
        return self.namespaces is None or ns in self.namespaces


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def split_tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def env_tokens(admin: Iterable[str], client: Iterable[str]) -> list[Token]:
    out = [Token(f"GUARD_ADMIN_TOKENS[{i}]", "admin", None, digest(t)) for i, t in enumerate(admin)]
    out += [
        Token(f"GUARD_CLIENT_TOKENS[{i}]", "client", None, digest(t)) for i, t in enumerate(client)
    ]
    return out


def parse_tokens_file(text: str, where: str = "tokens file") -> list[Token]:
    """The entries of a tokens file; UsageError naming the entry and field when one is bad."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: not YAML: {exc}", "tokens") from exc
    entries = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise UsageError(f"{where}: expected a mapping with a 'tokens' list", "tokens")
    out: list[Token] = []
    for i, e in enumerate(entries):
        at = f"{where}: tokens[{i}]"
        if not isinstance(e, dict):
            raise UsageError(f"{at}: expected a mapping", "tokens")
        unknown = set(e) - {"name", "role", "namespaces", "sha256"}
        if unknown:
            raise UsageError(f"{at}: unknown field {sorted(unknown)[0]!r}", sorted(unknown)[0])
        name, role, sha, nss = e.get("name"), e.get("role"), e.get("sha256"), e.get("namespaces")
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"{at}: 'name' is required", "name")
        if name in {t.name for t in out}:
            raise UsageError(f"{at}: duplicate name {name!r}", "name")
        if role not in ROLES:
            raise UsageError(f"{at} ({name}): 'role' must be admin or client", "role")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha.lower()):
            raise UsageError(f"{at} ({name}): 'sha256' must be 64 hex digits", "sha256")
        scope: frozenset[str] | None = None
        if nss is not None:
            if not isinstance(nss, list) or not nss:
                raise UsageError(
                    f"{at} ({name}): 'namespaces' must be a non-empty list", "namespaces"
                )
            scope = frozenset(check_namespace(str(n)) for n in nss)
        out.append(Token(name, role, scope, bytes.fromhex(sha)))
    return out


def load_tokens(admin: Iterable[str], client: Iterable[str], path: str | None) -> list[Token]:
    tokens = env_tokens(admin, client)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"GUARD_TOKENS_FILE: cannot read {path}: {exc}", "tokens") from exc
        tokens += parse_tokens_file(text, path)
    return tokens


def identify(tokens: list[Token], presented: str) -> Token | None:
    """The entry `presented` matches. One hash, then one comparison per entry, always all of
    them: the time does not depend on which entry (if any) matched."""
    d = digest(presented)
    match: Token | None = None
    for t in tokens:
        hit = hmac.compare_digest(d, t.digest)
        match = t if hit and match is None else match
    return match


def bearer() -> str:
    kind, _, token = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token (Authorization: Bearer <token>)", 401)
    return token.strip()


def _metrics(cfg: Any, tokens: list[Token]) -> None:
    metrics_digest: bytes | None = current_app.extensions["guard.metrics_digest"]
    if metrics_digest is not None:  # GUARD_METRICS_TOKEN (or an admin token)
        d = digest(bearer())
        ok = hmac.compare_digest(d, metrics_digest)
        for t in tokens:
            ok |= hmac.compare_digest(d, t.digest) and t.role == "admin"
        if not ok:
            raise AuthError("unknown token for /metrics", 401)
    elif cfg["METRICS_TOKEN_REQUIRED"] and tokens and identify(tokens, bearer()) is None:
        raise AuthError("unknown token", 401)


def authorize() -> None:
    """before_request hook: raise AuthError unless the request may reach its endpoint.
    Sets ``g.guard_token`` and the WSGI environ's ``guard.actor`` (the access log's actor)."""
    cfg = current_app.config
    tokens: list[Token] = current_app.extensions["guard.tokens"]
    if not tokens and not loopback_host(request.host):
        raise AuthError("open mode (no tokens) serves only a loopback Host header", 403)
    endpoint = request.endpoint or ""
    blueprint, _, name = endpoint.partition(".")
    if blueprint == "ops":
        if name == "metrics":
            _metrics(cfg, tokens)
        return
    if blueprint == "console" and name != "state":
        return  # the page and its static files hold no data; the page asks for a token
    if not tokens:
        request.environ["guard.actor"] = "open-mode"
        return  # open mode (loopback only; enforced by guard serve and the Host check)
    if not endpoint:
        return  # unknown route: let the 404 through
    token = identify(tokens, bearer())
    if token is None:
        raise AuthError("unknown token", 401)
    g.guard_token = token
    request.environ["guard.actor"] = token.name
    if (
        token.role != "admin"
        and blueprint != "console"
        and (blueprint != "leases" or endpoint in ADMIN_ONLY_LEASE_ROUTES)
    ):
        raise AuthError(
            "this route needs an admin token; a client token may only acquire, renew and "
            "release leases",
            403,
        )
    ns = (request.view_args or {}).get("ns")
    if ns is not None and not token.allows(str(ns)):
        raise AuthError(f"token {token.name!r} may not use namespace {ns!r}", 403)


def visible(namespaces: list[str]) -> list[str]:
    """The namespaces the request's token may see (all of them in open mode)."""
    token: Token | None = g.get("guard_token")
    return namespaces if token is None else [n for n in namespaces if token.allows(n)]


def loopback_host(host: str) -> bool:
    """True when a Host header (with or without port) names the loopback interface. No DNS:
    under DNS rebinding a foreign name resolves to 127.0.0.1 by design."""
    h = host.strip().lower()
    if h.startswith("["):
        h = h[1 : h.find("]")] if "]" in h else h
    elif h.count(":") == 1:
        h = h.rsplit(":", 1)[0]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


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


def check_bind(
    bind: str, admin_tokens: list[str], client_tokens: list[str], file_tokens: int = 0
) -> str | None:
    """None when serving is allowed; else why not. Open mode (no tokens) needs loopback."""
    if admin_tokens or client_tokens or file_tokens:
        return None
    host = bind.rsplit(":", 1)[0] if ":" in bind else bind
    if bind.startswith("unix:") or is_loopback(host):
        return None
    return (
        f"refusing to serve on {bind} without tokens: set GUARD_ADMIN_TOKENS (and "
        "GUARD_CLIENT_TOKENS) or GUARD_TOKENS_FILE, or bind to 127.0.0.1"
    )
