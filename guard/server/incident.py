"""Incident routes (admin token): temporary overrides and the audit log.

An override caps (or pauses, with 0) one function or group for a number of seconds, beside
its settings: re-applying a limits file does not remove it, and it ends by server time
inside the admission script. The audit log lists the namespace's latest config writes."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .. import overrides as ov
from ..errors import NotFound, UsageError
from ..model import check_name
from . import schemas as s
from .common import admin, body, reply

bp = Blueprint("incident", __name__, url_prefix="/v1/namespaces")


@bp.get("/<ns>/overrides")
def list_overrides(ns: str) -> Response:
    return reply(s.OverrideList, {"overrides": admin(ns).overrides()})


def _put(ns: str, kind: str, name: str) -> Response:
    a = admin(ns)
    check_name(name, kind)
    b = body(s.OverrideIn)
    doc = a.override(kind, name, b.max_concurrency, b.seconds, b.reason)
    return reply(s.OverrideOut, doc)


def _delete(ns: str, kind: str, name: str) -> Response:
    if not admin(ns).clear_override(kind, check_name(name, kind)):
        raise NotFound(f"no override of {kind} {name!r} in force in namespace {ns!r}", "override")
    return Response(status=204)


@bp.put("/<ns>/functions/<name>/override")
def put_function_override(ns: str, name: str) -> Response:
    return _put(ns, "function", name)


@bp.delete("/<ns>/functions/<name>/override")
def delete_function_override(ns: str, name: str) -> Response:
    return _delete(ns, "function", name)


@bp.put("/<ns>/groups/<name>/override")
def put_group_override(ns: str, name: str) -> Response:
    return _put(ns, "group", name)


@bp.delete("/<ns>/groups/<name>/override")
def delete_group_override(ns: str, name: str) -> Response:
    return _delete(ns, "group", name)


@bp.get("/<ns>/audit")
def audit(ns: str) -> Response:
    raw = request.args.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        raise UsageError(
            f"limit must be an integer from 1 to {ov.AUDIT_MAX_LIMIT}", "limit"
        ) from None
    return reply(s.AuditList, {"entries": admin(ns).audit(limit)})
