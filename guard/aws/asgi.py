"""Guard an ASGI app on Lambda (FastAPI, Starlette, ... behind Mangum): an ASGI middleware.
It imports no framework.

    from mangum import Mangum
    from starlette.middleware import Middleware
    import guard, guard.aws.asgi

    g = guard.Guard.from_env()
    app = FastAPI(middleware=[Middleware(guard.aws.asgi.GuardMiddleware, g=g)])
    handler = Mangum(app)          # or: Mangum(guard.aws.asgi.GuardMiddleware(app, g))

Each HTTP request holds a lease while the app handles it; a refusal is answered by the
middleware itself — 429 with ``Retry-After`` (503 for a store outage on a fail-closed
function), ``application/problem+json`` from `guard.aws.adapters.refusal_response` — and the
app never sees the request. Lifespan and websocket scopes pass through unguarded. The Lambda
context comes from the scope's ``aws.context`` (set by Mangum): it gives the lease its deadline
and, when neither `function` nor ``AWS_LAMBDA_FUNCTION_NAME`` is set, the name."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..client import Guard, KeyArg
from ..errors import GuardUnavailable, Throttled
from .adapters import BadKey, admit, check_key_arg, key_of, refusal_response, release

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class GuardMiddleware:
    """Wrap `app`; every HTTP request is guarded under one name (`function`, else
    ``AWS_LAMBDA_FUNCTION_NAME``, else ``aws.context``'s ``function_name``).

    Taking and giving back a lease is one Redis round trip each, made on the event loop: on
    Lambda an environment serves one request at a time, so nothing else waits. A `wait` for a
    slot (seconds, cut to the invocation's deadline) runs in a worker thread (asyncio).
    `key`: a key, or ``key(scope, context)`` (the ASGI scope — headers are
    ``scope["headers"]`` — and ``aws.context``) returning the request's key or None."""

    def __init__(
        self,
        app: ASGIApp,
        g: Guard,
        function: str | None = None,
        *,
        wait: float = 0.0,
        key: KeyArg = None,
    ) -> None:
        self.app, self.g, self.function, self.wait = app, g, function, wait
        self.key = check_key_arg(key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = scope.get("aws.context")
        try:
            k = key_of(self.key, scope, context)
            if self.wait > 0:
                lease = await asyncio.to_thread(admit, self.g, self.function, context, self.wait, k)
            else:
                lease = admit(self.g, self.function, context, key=k)
        except (Throttled, GuardUnavailable, BadKey) as exc:
            await _answer(send, refusal_response(exc))
            return
        try:
            await self.app(scope, receive, send)
        finally:
            release(lease)


async def _answer(send: Send, answer: dict[str, Any]) -> None:
    body = str(answer["body"]).encode()
    headers = [
        (k.lower().encode("latin-1"), str(v).encode("latin-1"))
        for k, v in answer["headers"].items()
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": answer["statusCode"], "headers": headers})
    await send({"type": "http.response.body", "body": body})
