"""Lease routes (client or admin token): acquire, renew, release, list.

An acquire may wait (``wait_seconds`` ≤ 30): the request then subscribes to the namespace's
release channel exactly like the SDK does, so a release wakes it at once. The wait holds one
server thread, hence the bound. A renew or release of a lease that is not held — expired,
released, or never granted; the store cannot tell these apart — answers 404 with problem type
``lease-not-held``: the holder must treat the slot as lost."""

from __future__ import annotations

import os
import time

from flask import Blueprint, Response, request

from ..client import parse_lease_id
from ..model import check_name, check_namespace
from ..store import Grant, Refusal
from . import schemas as s
from .common import admin, body, reply, store
from .errors import LeaseNotHeld, Refused

bp = Blueprint("leases", __name__, url_prefix="/v1/namespaces/<ns>/leases")


def _acquire(ns: str, b: s.LeaseIn, raw: bytes) -> Grant | Refusal:
    st = store()
    ttl_ms = int(b.ttl_seconds * 1000) if b.ttl_seconds is not None else 0
    wait = b.wait_seconds
    deadline = time.monotonic() + wait
    r = st.acquire(ns, b.function, raw, ttl_ms, int(wait * 1000), b.unavailable)
    if isinstance(r, Grant) or wait <= 0:
        return r
    with st.release_waiter(ns) as waiter:  # subscribe first, then retry: no release is missed
        while (left := deadline - time.monotonic()) > 0:
            r = st.acquire(ns, b.function, raw, ttl_ms, int(left * 1000))
            if isinstance(r, Grant):
                return r
            waiter.wait(min(left, max(r.retry_after_ms / 1000, 0.001)))
    return st.acquire(ns, b.function, raw, ttl_ms, 0)


@bp.post("")
def acquire(ns: str) -> Response:
    check_namespace(ns)
    b = body(s.LeaseIn)
    raw = parse_lease_id(b.lease_id) if b.lease_id else os.urandom(16)
    r = _acquire(ns, b, raw)
    if isinstance(r, Refusal):
        raise Refused(b.function, r.scope, r.retry_after_ms / 1000, r.on_unavailable)
    doc = {
        "lease_id": raw.hex(),
        "function": b.function,
        "groups": list(r.groups),
        "expires_at": r.expires_ms / 1000,
        "fence": r.fence,
        "ttl_seconds": r.ttl_ms / 1000,
        "on_unavailable": r.on_unavailable,
        "shadow_scope": r.shadow_scope,
    }
    resp = reply(s.LeaseOut, doc, 201)
    resp.headers["Location"] = f"{request.path}/{raw.hex()}"
    return resp


@bp.post("/<lease_id>/renew")
def renew(ns: str, lease_id: str) -> Response:
    check_namespace(ns)
    raw = parse_lease_id(lease_id)
    b = body(s.RenewIn, optional=True)
    ttl_ms = int(b.ttl_seconds * 1000) if b.ttl_seconds is not None else 0
    r = store().renew(ns, raw, ttl_ms)
    if r is None:
        raise LeaseNotHeld(f"lease {raw.hex()} is not held (expired or released)", "lease_id")
    doc = {"lease_id": raw.hex(), "expires_at": r.expires_ms / 1000, "ttl_seconds": r.ttl_ms / 1000}
    return reply(s.RenewalOut, doc)


@bp.delete("/<lease_id>")
def release(ns: str, lease_id: str) -> Response:
    check_namespace(ns)
    raw = parse_lease_id(lease_id)
    if not store().release(ns, raw):
        raise LeaseNotHeld(f"lease {raw.hex()} is not held (expired or released)", "lease_id")
    return Response(status=204)


@bp.get("")
def list_leases(ns: str) -> Response:
    a = admin(ns)
    function = request.args.get("function")
    if function is not None:
        check_name(function, "function")
    out = [info.doc() for info in a.store.leases(ns, function)]  # expired ones excluded
    return reply(s.LeaseList, {"leases": out})
