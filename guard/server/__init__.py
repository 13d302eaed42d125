"""guard's HTTP service (extra ``server``): admin and lease API, metrics, health.

`create_app` follows the Flask tutorial's factory: defaults, then the environment, then the
`config` mapping a test or `guard serve` passes; blueprints for the admin routes, the lease
routes and operations; one error handler (`guard.server.errors`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from ..settings import DEFAULT_SERVER_REDIS_URL, Settings
from ..store import RedisStore
from . import api, auth, console, errors, incident, leases, ops
from .metrics import GuardCollector, HttpMetrics
from .waiting import Waiters

MAX_BODY = 1024 * 1024  # bytes; larger bodies get 413


def env_config(settings: Settings | None = None) -> dict[str, Any]:
    """The app's config keys from `guard.settings.Settings` (read from the environment
    when not given)."""
    st = settings or Settings.from_env()
    return {
        "REDIS_URL": st.redis_url or DEFAULT_SERVER_REDIS_URL,
        "REDIS_TIMEOUT": st.redis_timeout,
        "ADMIN_TOKENS": list(st.admin_tokens),
        "CLIENT_TOKENS": list(st.client_tokens),
        "TOKENS_FILE": st.tokens_file,
        "METRICS_TOKEN": st.metrics_token,
        "METRICS_TOKEN_REQUIRED": st.metrics_token_required,
        "METRICS_NAMESPACES": list(st.metrics_namespaces),
        "MAX_WAITERS": st.max_waiters,
        "QUARANTINE": bool(st.quarantine),
    }


def create_app(config: Mapping[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """The app: defaults, then `settings` (default: the environment), then `config`."""
    app = Flask(__name__)
    app.config.update(env_config(settings))
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
    tokens = auth.load_tokens(
        app.config["ADMIN_TOKENS"], app.config["CLIENT_TOKENS"], app.config["TOKENS_FILE"]
    )
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
