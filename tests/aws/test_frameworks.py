"""Chalice, Powertools' resolvers and an ASGI app behind Mangum, each guarded by its own
integration and run for real on API Gateway events: granted requests run with the lease held,
refused ones get a real 429 (or 503) problem answer and never reach the route."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from events import LambdaContext, event

import guard
from guard.aws.adapters import PROBLEM_THROTTLED, PROBLEM_UNAVAILABLE

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
View = Callable[[str], dict[str, Any]]


def chalice_app(g: guard.Guard, function: str | None, view: View, key: Any = None) -> Handler:
    from chalice import Chalice

    import guard.aws.chalice

    app = Chalice(app_name="orders")
    app.register_middleware(guard.aws.chalice.middleware(g, function, key=key), "http")
    app.route("/orders/{id}", methods=["GET"])(lambda id: view(id))
    return app  # the Chalice app is the Lambda handler


def powertools_app(resolver: str) -> Callable[[guard.Guard, str | None, View], Handler]:
    def build(g: guard.Guard, function: str | None, view: View, key: Any = None) -> Handler:
        from aws_lambda_powertools.event_handler import (
            APIGatewayHttpResolver,
            APIGatewayRestResolver,
        )

        from guard.aws.powertools import GuardMiddleware

        app = {"rest": APIGatewayRestResolver, "http": APIGatewayHttpResolver}[resolver]()
        app.use(middlewares=[GuardMiddleware(g, function, key=key)])
        app.get("/orders/<id>")(lambda id: view(id))
        return lambda e, c: app.resolve(e, c)

    return build


def asgi_app(g: guard.Guard, function: str | None, view: View, key: Any = None) -> Handler:
    from mangum import Mangum
    from mangum.adapter import DEFAULT_TEXT_MIME_TYPES
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from guard.aws.asgi import GuardMiddleware

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(view(request.path_params["id"]))

    app = Starlette(
        routes=[Route("/orders/{id}", endpoint)],
        middleware=[Middleware(GuardMiddleware, g=g, function=function, key=key)],
    )
    # as docs/aws.md says: Mangum base64-encodes types it does not know as text
    text = [*DEFAULT_TEXT_MIME_TYPES, "application/problem+json"]
    return Mangum(app, lifespan="off", text_mime_types=text)  # type: ignore[return-value]


FRAMEWORKS = pytest.mark.parametrize(
    ("build", "kind"),
    [
        (chalice_app, "v1"),  # Chalice deploys REST APIs (payload 1.0)
        (powertools_app("rest"), "v1"),
        (powertools_app("http"), "v2"),
        (asgi_app, "v1"),
        (asgi_app, "v2"),
    ],
    ids=["chalice", "powertools-rest", "powertools-http", "mangum-rest", "mangum-http"],
)


def header(out: dict[str, Any], name: str) -> str | None:
    for k, v in (out.get("headers") or {}).items():
        if k.lower() == name.lower():
            return str(v)
    for k, vs in (out.get("multiValueHeaders") or {}).items():
        if k.lower() == name.lower():
            return str(vs[0])
    return None


def in_use(g: guard.Guard, fn: str) -> int:
    return int(g.admin.usage()["functions"].get(fn, {}).get("in_use", 0))


@FRAMEWORKS
def test_granted_runs_the_route_with_the_lease_held(g: guard.Guard, build: Any, kind: str) -> None:
    seen: list[tuple[str, int]] = []

    def view(id: str) -> dict[str, Any]:
        seen.append((id, in_use(g, "orders")))
        return {"id": id}

    out = build(g, "orders", view)(event(kind), LambdaContext())
    assert out["statusCode"] == 200, out
    assert json.loads(out["body"]) == {"id": "7"}
    assert seen == [("7", 1)]  # the route ran once, holding the lease
    assert in_use(g, "orders") == 0  # given back after


@FRAMEWORKS
def test_throttled_is_a_real_429_problem(g: guard.Guard, build: Any, kind: str) -> None:
    g.admin.put_function("orders", max_concurrency=1)
    held = g.acquire("orders", ttl=30)
    ran: list[str] = []
    handler = build(g, "orders", lambda id: ran.append(id) or {"id": id})

    out = handler(event(kind), LambdaContext())
    assert out["statusCode"] == 429, out
    assert not ran
    assert not out.get("isBase64Encoded")
    assert header(out, "Content-Type") == "application/problem+json"
    retry = header(out, "Retry-After")
    assert retry is not None and int(retry) >= 1
    body = json.loads(out["body"])
    assert body["type"] == PROBLEM_THROTTLED and body["status"] == 429
    assert body["function"] == "orders" and body["scope"] == "function"
    assert in_use(g, "orders") == 1  # only the held lease

    held.release()
    assert handler(event(kind), LambdaContext())["statusCode"] == 200
    assert ran == ["7"]


@FRAMEWORKS
def test_name_from_the_lambda_context(
    g: guard.Guard, monkeypatch: pytest.MonkeyPatch, build: Any, kind: str
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    g.admin.put_function("ctx-fn", max_concurrency=0)
    out = build(g, None, lambda id: {"id": id})(event(kind), LambdaContext("ctx-fn"))
    assert out["statusCode"] == 429
    assert json.loads(out["body"])["function"] == "ctx-fn"


@FRAMEWORKS
def test_route_errors_still_release(g: guard.Guard, build: Any, kind: str) -> None:
    def view(id: str) -> dict[str, Any]:
        raise RuntimeError("boom")

    handler = build(g, "orders", view)
    try:
        out = handler(event(kind), LambdaContext())
        assert out["statusCode"] == 500  # the framework's own answer to a failing route
    except RuntimeError:
        pass  # or the error escapes to Lambda: either way the slot is free
    assert in_use(g, "orders") == 0


@FRAMEWORKS
def test_store_down_fail_closed_is_503(redis_server: Any, build: Any, kind: str) -> None:
    from redis_proc import free_port

    dead = guard.Guard.from_url(
        f"redis://127.0.0.1:{free_port()}/0", on_unavailable="closed", timeout=0.05
    )
    out = build(dead, "orders", lambda id: {"id": id})(event(kind), LambdaContext())
    assert out["statusCode"] == 503
    assert header(out, "Content-Type") == "application/problem+json"
    assert json.loads(out["body"])["type"] == PROBLEM_UNAVAILABLE
    dead.close()


def test_chalice_test_client(g: guard.Guard) -> None:
    """Chalice's own local test client (it builds the event and context itself)."""
    from chalice import Chalice
    from chalice.test import Client

    import guard.aws.chalice

    app = Chalice(app_name="orders")
    app.register_middleware(guard.aws.chalice.middleware(g, "orders"), "http")
    app.route("/")(lambda: {"ok": True})
    with Client(app) as client:
        assert client.http.get("/").status_code == 200
        g.admin.put_function("orders", max_concurrency=0)
        r = client.http.get("/")
    assert r.status_code == 429
    assert r.headers["Content-Type"] == "application/problem+json"
    assert int(r.headers["Retry-After"]) >= 1
    assert json.loads(r.body)["type"] == PROBLEM_THROTTLED


def test_asgi_passes_lifespan_through(g: guard.Guard) -> None:
    """Only HTTP requests are guarded: Mangum's lifespan start/stop reaches the app."""
    from mangum import Mangum
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from guard.aws.asgi import GuardMiddleware

    started: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        started.append("up")
        yield

    g.admin.put_function("orders", max_concurrency=0)
    app = Starlette(
        routes=[Route("/orders/{id}", lambda r: PlainTextResponse("x"))],
        middleware=[Middleware(GuardMiddleware, g=g, function="orders")],
        lifespan=lifespan,
    )
    out = Mangum(app, lifespan="on")(event("v2"), LambdaContext())  # type: ignore[arg-type]
    assert started == ["up"] and out["statusCode"] == 429


def test_powertools_resolve_async(g: guard.Guard) -> None:
    import asyncio

    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    from guard.aws.powertools import GuardMiddleware

    app = APIGatewayHttpResolver()
    app.use(middlewares=[GuardMiddleware(g, "orders")])

    @app.get("/orders/<id>")
    async def get(id: str) -> dict[str, Any]:
        return {"id": id, "in_use": in_use(g, "orders")}

    # a loop of its own, closed here: asyncio.run would unset the loop Mangum installs for
    # the main thread in other tests and leave it unclosed
    loop = asyncio.new_event_loop()
    try:
        out = loop.run_until_complete(app.resolve_async(event("v2"), LambdaContext()))
        assert out["statusCode"] == 200 and json.loads(out["body"]) == {"id": "7", "in_use": 1}
        g.admin.put_function("orders", max_concurrency=0)
        out = loop.run_until_complete(app.resolve_async(event("v2"), LambdaContext()))
        assert out["statusCode"] == 429 and header(out, "Retry-After")
    finally:
        loop.close()


def test_chalice_registered_for_all_guards_only_http(g: guard.Guard) -> None:
    """Registered for "all" events, the middleware guards HTTP requests and lets the app's
    other Lambda functions (here a pure one) through untouched."""
    from chalice import Chalice

    import guard.aws.chalice

    g.admin.put_function("orders", max_concurrency=0)
    app = Chalice(app_name="orders")
    app.register_middleware(guard.aws.chalice.middleware(g, "orders"), "all")
    app.route("/orders/{id}")(lambda id: {"id": id})
    pure = app.lambda_function(name="tick")(lambda event, context: {"ran": True})
    assert pure({"detail": {}}, LambdaContext()) == {"ran": True}
    assert app(event("v1"), LambdaContext())["statusCode"] == 429


# -- keys (issue 14): the key from the request, per framework -------------------------------

# What a user writes to key a framework's requests by their API key header (docs/aws.md).
KEY_FROM_HEADER: dict[str, Callable[[Any, Any], str | None]] = {
    "chalice": lambda request, context: request.headers.get("x-api-key"),
    "powertools": lambda event, context: event.headers.get("x-api-key"),
    "asgi": lambda scope, context: next(
        (v.decode() for k, v in scope["headers"] if k == b"x-api-key"), None
    ),
}


def with_header(kind: str, value: str) -> dict[str, Any]:
    e = event(kind)
    if kind == "v1":
        e["headers"]["X-Api-Key"] = value
        e["multiValueHeaders"]["X-Api-Key"] = [value]
    else:
        e["headers"]["x-api-key"] = value
    return e


@FRAMEWORKS
def test_key_from_the_request_rate_limits_per_api_key(
    g: guard.Guard, build: Any, kind: str
) -> None:
    g.admin.put_function("orders", key_rate_per_second=0.01, key_rate_burst=1)
    family = build.__name__.split("_")[0] if build.__name__ != "build" else "powertools"
    handler = build(g, "orders", lambda id: {"id": id}, KEY_FROM_HEADER[family])

    assert handler(with_header(kind, "key-1"), LambdaContext())["statusCode"] == 200
    out = handler(with_header(kind, "key-1"), LambdaContext())
    assert out["statusCode"] == 429, out
    body = json.loads(out["body"])
    assert body["scope"] == "rate:key" and 0 < body["retry_after"] <= 100
    assert int(header(out, "Retry-After") or 0) >= 1
    assert handler(with_header(kind, "key-2"), LambdaContext())["statusCode"] == 200
    # no header: no key, so no key rate
    assert handler(event(kind), LambdaContext())["statusCode"] == 200
    # a key that breaks the name rule is the caller's mistake: 400 naming key
    out = handler(with_header(kind, "not a key!"), LambdaContext())
    assert out["statusCode"] == 400 and json.loads(out["body"])["field"] == "key", out
    assert in_use(g, "orders") == 0


def asgi_direct(g: guard.Guard, function: str | None, view: View, key: Any = None) -> Any:
    from guard.aws.asgi import GuardMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    return GuardMiddleware(app, g, function, key=key)  # Starlette builds middleware lazily


@pytest.mark.parametrize("make", [chalice_app, powertools_app("http"), asgi_direct])
def test_a_bad_fixed_key_is_refused_at_setup(g: guard.Guard, make: Any) -> None:
    with pytest.raises(guard.UsageError) as err:
        make(g, "orders", lambda id: {}, "bad key")
    assert err.value.field == "key"
