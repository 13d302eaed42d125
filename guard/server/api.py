"""Admin routes: namespaces, groups, functions and usage (admin token).

Every write goes through `guard.admin.Admin`, which validates the whole resulting config and
writes it with one compare-and-set script: a rejected write changes nothing. PUT replaces a
resource, PATCH merges the fields given, DELETE answers 204 or 404."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..config_file import config_from_doc, config_to_doc
from ..errors import NotFound, UsageError
from ..keys import MAX_TOP_KEYS
from ..model import check_name
from . import schemas as s
from .auth import visible
from .common import admin, body, reply, store

bp = Blueprint("admin", __name__, url_prefix="/v1/namespaces")


@bp.get("")
def list_namespaces() -> Response:
    return reply(s.NamespaceList, {"namespaces": visible(store().namespaces())})


@bp.get("/<ns>")
def get_namespace(ns: str) -> Response:
    return reply(s.NamespaceOut, admin(ns).get_namespace(), exclude_unset=True)


@bp.put("/<ns>")
def put_namespace(ns: str) -> Response:
    a = admin(ns)
    b = body(s.NamespaceIn)
    doc = a.set_namespace(
        max_concurrency=b.max_concurrency,
        rate_per_second=b.rate_per_second,
        rate_burst=b.rate_burst,
    )
    return reply(s.NamespaceOut, doc, exclude_unset=True)


@bp.get("/<ns>/usage")
def usage(ns: str) -> Response:
    return reply(s.UsageOut, admin(ns).usage(), exclude_unset=True)


@bp.get("/<ns>/config")
def get_config(ns: str) -> Response:
    return reply(s.ConfigDoc, config_to_doc(admin(ns).config()), exclude_unset=True)


@bp.put("/<ns>/config")
def put_config(ns: str) -> Response:
    """Replace the whole settings in one atomic write (what ``guard apply`` does)."""
    a = admin(ns)
    doc = body(s.ConfigDoc).model_dump()
    out = config_to_doc(a.replace_config(config_from_doc(doc)))
    return reply(s.ConfigDoc, out, exclude_unset=True)


# -- groups ------------------------------------------------------------------------------


@bp.get("/<ns>/groups")
def list_groups(ns: str) -> Response:
    return reply(s.GroupList, {"groups": admin(ns).list_groups()}, exclude_unset=True)


@bp.get("/<ns>/groups/<name>")
def get_group(ns: str, name: str) -> Response:
    a = admin(ns)
    doc = a.get_group(check_name(name, "group"))
    if doc is None:
        raise NotFound(f"no group {name!r} in namespace {ns!r}", "group")
    return reply(s.GroupOut, doc, exclude_unset=True)


@bp.put("/<ns>/groups/<name>")
def put_group(ns: str, name: str) -> Response:
    a = admin(ns)
    check_name(name, "group")
    return reply(s.GroupOut, a.put_group(name, **body(s.GroupIn).model_dump()), exclude_unset=True)


@bp.patch("/<ns>/groups/<name>")
def patch_group(ns: str, name: str) -> Response:
    a = admin(ns)
    check_name(name, "group")
    fields = body(s.GroupIn).model_dump(exclude_unset=True)
    return reply(s.GroupOut, a.patch_group(name, **fields), exclude_unset=True)


@bp.delete("/<ns>/groups/<name>")
def delete_group(ns: str, name: str) -> Response:
    if not admin(ns).delete_group(check_name(name, "group")):
        raise NotFound(f"no group {name!r} in namespace {ns!r}", "group")
    return Response(status=204)


# -- functions ---------------------------------------------------------------------------


@bp.get("/<ns>/functions")
def list_functions(ns: str) -> Response:
    return reply(s.FunctionList, {"functions": admin(ns).list_functions()}, exclude_unset=True)


@bp.get("/<ns>/functions/<name>")
def get_function(ns: str, name: str) -> Response:
    doc = admin(ns).get_function(check_name(name, "function"))
    if doc is None:
        raise NotFound(f"no function {name!r} in namespace {ns!r}", "function")
    return reply(s.FunctionOut, doc, exclude_unset=True)


@bp.put("/<ns>/functions/<name>")
def put_function(ns: str, name: str) -> Response:
    a = admin(ns)
    check_name(name, "function")
    return reply(
        s.FunctionOut, a.put_function(name, **body(s.FunctionIn).model_dump()), exclude_unset=True
    )


@bp.patch("/<ns>/functions/<name>")
def patch_function(ns: str, name: str) -> Response:
    a = admin(ns)
    check_name(name, "function")
    fields = body(s.FunctionIn).model_dump(exclude_unset=True)
    return reply(s.FunctionOut, a.patch_function(name, **fields), exclude_unset=True)


@bp.delete("/<ns>/functions/<name>")
def delete_function(ns: str, name: str) -> Response:
    if not admin(ns).delete_function(check_name(name, "function")):
        raise NotFound(f"no function {name!r} in namespace {ns!r}", "function")
    return Response(status=204)


# -- per-key usage (issue 14) --------------------------------------------------------------


def _top() -> int:
    raw = request.args.get("top", "10")
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"top must be an integer from 1 to {MAX_TOP_KEYS}", "top") from None


@bp.get("/<ns>/functions/<name>/keys")
def function_keys(ns: str, name: str) -> Response:
    """The top keys by in use at a function (a bounded scan: docs/http.md)."""
    return reply(s.KeyUsageOut, admin(ns).key_usage("function", name, _top()))


@bp.get("/<ns>/groups/<name>/keys")
def group_keys(ns: str, name: str) -> Response:
    return reply(s.KeyUsageOut, admin(ns).key_usage("group", name, _top()))
