"""guard's HTTP service (extra ``server``): admin and lease API, metrics, health.

`create_app` follows the Flask tutorial's factory: defaults, then the environment, then the
`config` mapping a test or `guard serve` passes; blueprints for the admin routes, the lease
routes and operations; one error handler (`guard.server.errors`)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from ..store import RedisStore
from . import api, auth, console, errors, incident, leases, ops
from .metrics import GuardCollector, HttpMetrics
from .waiting import DEFAULT_MAX_WAITERS, Waiters

MAX_BODY = 1024 * 1024  # bytes; larger bodies get 413


def env_config() -> dict[str, Any]:
    env = os.environ
    return {
        "REDIS_URL": env.get("GUARD_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "REDIS_TIMEOUT": float(env.get("GUARD_REDIS_TIMEOUT", "1.0")),
        "ADMIN_TOKENS": auth.split_tokens(env.get("GUARD_ADMIN_TOKENS")),
        "CLIENT_TOKENS": auth.split_tokens(env.get("GUARD_CLIENT_TOKENS")),
        "TOKENS_FILE": env.get("GUARD_TOKENS_FILE") or None,
        "METRICS_TOKEN": env.get("GUARD_METRICS_TOKEN") or None,
        "METRICS_TOKEN_REQUIRED": env.get("GUARD_METRICS_TOKEN_REQUIRED", "").lower()
        in ("1", "true", "yes", "on"),
        "METRICS_NAMESPACES": auth.split_tokens(env.get("GUARD_METRICS_NAMESPACES")),
        "MAX_WAITERS": int(env.get("GUARD_MAX_WAITERS", str(DEFAULT_MAX_WAITERS))),
        "QUARANTINE": env.get("GUARD_QUARANTINE", "").lower() in ("1", "true", "yes", "on"),
    }


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(env_config())
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    if config:
        app.config.update(config)
    for k in ("ADMIN_TOKENS", "CLIENT_TOKENS", "METRICS_NAMESPACES"):
        if isinstance(app.config[k], str):
            app.config[k] = auth.split_tokens(app.config[k])

    store = app.config.get("STORE") or RedisStore.from_url(
        app.config["REDIS_URL"],
        timeout=app.config["REDIS_TIMEOUT"],
        quarantine=app.config["QUARANTINE"],  # the failover quarantine for HTTP leases too
    )
    tokens = auth.load_tokens(app.config["ADMIN_TOKENS"], app.config["CLIENT_TOKENS"],
                              app.config["TOKENS_FILE"])  # fmt: skip
    metrics_token = app.config["METRICS_TOKEN"]
    http = HttpMetrics()
    app.extensions["guard.tokens"] = tokens
    app.extensions["guard.metrics_digest"] = auth.digest(metrics_token) if metrics_token else None
    app.extensions["guard.waiters"] = Waiters(int(app.config["MAX_WAITERS"]))
    app.extensions["guard.store"] = store
    app.extensions["guard.http_metrics"] = http
    app.extensions["guard.collector"] = GuardCollector(store, app.config["METRICS_NAMESPACES"])

    errors.register(app)
    app.before_request(auth.authorize)
    for bp in (api.bp, incident.bp, leases.bp, ops.bp, console.bp):
        app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        g.guard_start = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        if resp.status_code == 204 or (request.method == "OPTIONS" and not resp.data):
            # no body, so no Content-Type (Flask would say text/html); OPTIONS answers 204
            resp.status_code = 204
            resp.headers.pop("Content-Type", None)
        start = g.get("guard_start")
        if start is not None:
            route = request.url_rule.rule if request.url_rule else "<unmatched>"
            http.observe(request.method, route, resp.status_code, time.perf_counter() - start)
        return resp

    return app
