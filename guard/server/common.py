"""Small helpers every blueprint uses: the store, an `Admin` per namespace, JSON bodies."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Response, current_app, g, jsonify, request
from pydantic import BaseModel

from ..admin import Admin
from ..errors import UsageError
from ..model import check_namespace
from ..store import RedisStore

M = TypeVar("M", bound=BaseModel)


def store() -> RedisStore:
    s: RedisStore = current_app.extensions["guard.store"]
    return s


def actor() -> str:
    """Who the audit log records for this request: the token's name, or ``open-mode``."""
    token = g.get("guard_token")
    return token.name if token is not None else "open-mode"


def admin(ns: str) -> Admin:
    return Admin(store(), check_namespace(ns), actor())


def body(model: type[M], *, optional: bool = False) -> M:
    """Parse the request body into `model`; a missing or non-object body is a 400."""
    raw = request.get_data(cache=True)
    if not raw.strip() and optional:
        return model()
    try:
        data = request.get_json(force=True, silent=False)
    except Exception as exc:
        raise UsageError("the body must be a JSON object", "body") from exc
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object", "body")
    return model.model_validate(data)


def reply(
    model: type[BaseModel], data: Any, status: int = 200, *, exclude_unset: bool = False
) -> Response:
    """Serialize through the response model, so replies match /openapi.json.
    `exclude_unset` leaves out optional members `data` does not have (e.g. ``override``)."""
    out = model.model_validate(data).model_dump(mode="json", exclude_unset=exclude_unset)
    resp = jsonify(out)
    resp.status_code = status
    return resp
