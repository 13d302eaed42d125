"""Lease routes (client or admin token): acquire, renew, release, list.

An acquire may wait (``wait_seconds`` ≤ 30): the request then subscribes to the namespace's
release channel exactly like the SDK does, so a release wakes it at once. Under the gevent
workers of ``guard serve`` the wait holds a greenlet and a Redis connection, not a thread;
waiters per namespace are capped (`guard.server.waiting`). Listing leases is admin-only: lease
ids are 128 random bits, so a client token cannot end or renew a lease it was not given.
A renew or release of a lease that is not held — expired, released, or never granted; the
store cannot tell these apart — answers 404 with problem type ``lease-not-held``: the holder
must treat the slot as lost. A lease request for a namespace that has no configuration
answers 404 ``namespace-not-found`` (so clients cannot create namespaces; the SDK on Redis
needs no configuration)."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, request

from .. import keys
from ..model import check_namespace, check_ttl
from ..wire import Grant, Refusal, parse_lease_id
from . import schemas as s
from .common import admin, body, reply, store
from .errors import LeaseNotHeld, Refused
from .waiting import Waiters

bp = Blueprint("leases", __name__, url_prefix="/v1/namespaces/<ns>/leases")


class WaitersFull(Refused):
    """An acquire that asked to wait while its namespace already has the most waiters."""

    def __init__(self, ns: str, function: str, r: Refusal) -> None:
        super().__init__(function, r.scope, r.retry_after_ms / 1000, r.on_unavailable)
        self.args = (
            f"{function!r} throttled by {r.scope} limit, and namespace {ns!r} already has the "
            "most acquires waiting that this server allows (GUARD_MAX_WAITERS); retry later",
        )


def _ttl_ms(ttl_seconds: float | None) -> int:
    return keys.ttl_ms(check_ttl(ttl_seconds, "ttl_seconds")) if ttl_seconds is not None else 0


def _acquire(ns: str, b: s.LeaseIn, raw: bytes) -> Grant | Refusal:
    """Only for a configured namespace: a lease request for any other answers 404
    ``namespace-not-found`` and writes nothing (the check is inside the script)."""
    ttl_ms = _ttl_ms(b.ttl_seconds)
    st = store()
    key = b.key
    if not b.wait_seconds:
        return st.acquire_waiting(
            ns, b.function, raw, ttl_ms, 0, b.unavailable, require_config=True, key=key
        )
    waiters: Waiters = current_app.extensions["guard.waiters"]
    with waiters.slot(ns) as admitted:
        if admitted:
            return st.acquire_waiting(
                ns,
                b.function,
                raw,
                ttl_ms,
                b.wait_seconds,
                b.unavailable,
                require_config=True,
                key=key,
                more=b.wait_more_seconds,
            )
    # no wait, no queue
    r = st.acquire_waiting(
        ns, b.function, raw, ttl_ms, 0, b.unavailable, require_config=True, key=key
    )
    if isinstance(r, Refusal):
        raise WaitersFull(ns, b.function, r)
    return r


@bp.post("")
def acquire(ns: str) -> Response:
    check_namespace(ns)
    b = body(s.LeaseIn)
    raw = parse_lease_id(b.lease_id) if b.lease_id else os.urandom(16)
    r = _acquire(ns, b, raw)
    if isinstance(r, Refusal):
        raise Refused(b.function, r.scope, r.retry_after_ms / 1000, r.on_unavailable)
    doc = r.to_doc()
    resp = reply(s.LeaseOut, doc, 201)
    resp.headers["Location"] = f"{request.path}/{raw.hex()}"
    return resp


@bp.post("/<lease_id>/renew")
def renew(ns: str, lease_id: str) -> Response:
    check_namespace(ns)
    raw = parse_lease_id(lease_id)
    b = body(s.RenewIn, optional=True)
    r = store().renew(ns, raw, _ttl_ms(b.ttl_seconds))
    if r is None:
        raise LeaseNotHeld(f"lease {raw.hex()} is not held (expired or released)", "lease_id")
    return reply(s.RenewalOut, r.to_doc())


@bp.delete("/<lease_id>")
def release(ns: str, lease_id: str) -> Response:
    check_namespace(ns)
    raw = parse_lease_id(lease_id)
    if not store().release(ns, raw):
        raise LeaseNotHeld(f"lease {raw.hex()} is not held (expired or released)", "lease_id")
    return Response(status=204)


@bp.get("")
def list_leases(ns: str) -> Response:
    function = request.args.get("function")
    out = [info.to_doc() for info in admin(ns).leases(function)]  # expired ones excluded
    return reply(s.LeaseList, {"leases": out}, exclude_unset=True)
