"""Guard a Chalice app's HTTP routes: a Chalice middleware (needs ``chalice``).

    from chalice import Chalice
    import guard, guard.aws.chalice

    app = Chalice(app_name="orders")
    app.register_middleware(guard.aws.chalice.middleware(guard.Guard.from_env()), "http")

Every request takes a lease before its view runs and gives it back after; a refusal is a real
HTTP answer (429 with ``Retry-After``, or 503 for a store outage on a fail-closed function,
both ``application/problem+json``), built by `guard.aws.adapters.refusal_response`.

Why a middleware: a Chalice view takes no ``(event, context)`` and its return value becomes
the body, so `guard.aws.api_gateway` on a route answers 200 with the 429 document as its body,
and `Guard.limit` there lets `Throttled` escape as a 500."""

from __future__ import annotations

from collections.abc import Callable

from chalice.app import Request, Response

from ..client import Guard, KeyArg
from ..errors import GuardUnavailable, Throttled
from .adapters import BadKey, admit, check_key_arg, key_of, refusal_response, release

Middleware = Callable[[Request, Callable[[Request], Response]], Response]


def middleware(
    g: Guard, function: str | None = None, *, wait: float = 0.0, key: KeyArg = None
) -> Middleware:
    """A Chalice ``http`` middleware guarding every route of the app with one name:
    `function`, else ``AWS_LAMBDA_FUNCTION_NAME``, else the Lambda context's
    ``function_name``. `wait` seconds are spent waiting for a slot at most (cut to the
    invocation's deadline). `key`: a key, or ``key(request, context)`` (the Chalice
    `Request` and the Lambda context) returning the request's key or None. Register it with
    ``app.register_middleware(mw, "http")`` or ``app.middleware("http")(mw)``."""
    check_key_arg(key)

    def guard_middleware(event: Request, get_response: Callable[[Request], Response]) -> Response:
        if not isinstance(event, Request):  # registered for "all": other events pass
            return get_response(event)
        try:
            ctx = event.lambda_context
            lease = admit(g, function, ctx, wait, key_of(key, event, ctx))
        except (Throttled, GuardUnavailable, BadKey) as exc:
            answer = refusal_response(exc)
            return Response(
                body=answer["body"], status_code=answer["statusCode"], headers=answer["headers"]
            )
        try:
            return get_response(event)
        finally:
            release(lease)

    return guard_middleware
