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


def unready(detail: str) -> Response:
    resp = jsonify(status="unavailable", detail=detail)
    resp.status_code = 503
    return resp


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers, the lease scripts run there (not just PING), and no namespace
    lost its settings (acquires there would answer 503 store-reset). Unauthenticated, so the
    cause goes to the log, not into the answer."""
    try:
        st = store()
        st.usage_fields(PROBE_NAMESPACE)
        lost = st.reset_namespaces()
    except GuardError as exc:
        current_app.logger.warning("readyz: store unavailable: %s", exc)
        return unready("the store is unreachable or failing (see the server log)")
    if lost:
        current_app.logger.warning("readyz: namespaces lost their settings: %s", lost)
        return unready(f"{len(lost)} namespace(s) lost their settings (store reset)")
    return jsonify(status="ok")


@bp.get("/metrics")
def metrics() -> Response:
    http: HttpMetrics = current_app.extensions["guard.http_metrics"]
    collector: GuardCollector = current_app.extensions["guard.collector"]
    return Response(http.exposition(collector), mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())
