"""Problem types (RFC 9457): the one table of ``type`` URI, title and status for every problem
document guard produces — the HTTP API (`guard.server.errors`) and the Lambda adapters
(`guard.aws.adapters`) alike. I/O-free, so the SDK side imports it without Flask.

Types are URNs, ``urn:guard:problem:<slug>``: an identifier that means the same wherever the
document comes from (our server, a user's API Gateway, the Node SDK later), that needs no host
we would have to keep serving, and that no relative-URI resolution can turn into a link to
someone else's site. docs/http.md lists every slug and when it is used; a client switches on
``type`` (or its slug), never on ``title`` or ``detail``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREFIX = "urn:guard:problem:"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PREFIX + self.slug


TYPES: dict[str, ProblemType] = {
    t.slug: t
    for t in (
        ProblemType("bad-request", 400, "Bad request"),
        ProblemType("unauthorized", 401, "Unauthorized"),
        ProblemType("forbidden", 403, "Forbidden"),
        ProblemType("not-found", 404, "Not found"),
        ProblemType("lease-not-held", 404, "Lease not held"),
        ProblemType("namespace-not-found", 404, "Namespace not found"),
        ProblemType("method-not-allowed", 405, "Method not allowed"),
        ProblemType("conflict", 409, "Conflict"),
        ProblemType("request-timeout", 408, "Request timeout"),
        ProblemType("payload-too-large", 413, "Payload too large"),
        ProblemType("uri-too-long", 414, "URI too long"),
        ProblemType("header-fields-too-large", 431, "Header fields too large"),
        ProblemType("throttled", 429, "Throttled"),
        ProblemType("internal", 500, "Internal error"),
        ProblemType("store-reset", 503, "Store reset"),
        ProblemType("store-unavailable", 503, "Store unavailable"),
    )
}
# the type a bare HTTP status maps to (werkzeug's own errors: unknown route, 405, 413 …)
BY_STATUS: dict[int, ProblemType] = {}
for _t in TYPES.values():
    BY_STATUS.setdefault(_t.status, _t)


def document(slug: str, detail: str, **extensions: Any) -> dict[str, Any]:
    """The problem body for `slug`; extension members that are None are left out."""
    t = TYPES[slug]
    body: dict[str, Any] = {"type": t.uri, "title": t.title, "status": t.status, "detail": detail}
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body
