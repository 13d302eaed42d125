"""Operations routes, open by default: liveness, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..errors import GuardError
from .common import store
from .metrics import GuardCollector, HttpMetrics
from .openapi import document

bp = Blueprint("ops", __name__)
PROBE_NAMESPACE = "_guard_probe"  # never configured; read_usage on it proves the scripts run


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers *and* the lease scripts run there (not just PING)."""
    try:
        store().usage_fields(PROBE_NAMESPACE)
    except GuardError as exc:
        resp = jsonify(status="unavailable", detail=str(exc))
        resp.status_code = 503
        return resp
    return jsonify(status="ok")


@bp.get("/metrics")
def metrics() -> Response:
    http: HttpMetrics = current_app.extensions["guard.http_metrics"]
    collector: GuardCollector = current_app.extensions["guard.collector"]
    return Response(http.exposition(collector), mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())
