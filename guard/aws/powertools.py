"""Guard a Powertools event handler (``APIGatewayRestResolver``, ``APIGatewayHttpResolver``,
and the other HTTP resolvers): a Powertools middleware (needs ``aws-lambda-powertools``).

    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    import guard, guard.aws.powertools

    app = APIGatewayHttpResolver()
    app.use(middlewares=[guard.aws.powertools.GuardMiddleware(guard.Guard.from_env())])

    def handler(event, context):
        return app.resolve(event, context)

Or per route: ``@app.get("/orders", middlewares=[GuardMiddleware(g, "orders-read")])``. A
refusal is a 429 with ``Retry-After`` (503 for a store outage on a fail-closed function), both
``application/problem+json`` from `guard.aws.adapters.refusal_response`; the route does not
run. Works with ``app.resolve_async`` too (Powertools runs sync middlewares there)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response
from aws_lambda_powertools.event_handler.middlewares import BaseMiddlewareHandler, NextMiddleware

from ..client import Guard, KeyArg
from ..errors import GuardUnavailable, Throttled
from .adapters import BadKey, admit, check_key_arg, key_of, refusal_response, release


class GuardMiddleware(BaseMiddlewareHandler):  # type: ignore[type-arg]
    """Hold a lease while the route (and the middlewares after this one) runs. The name is
    `function`, else ``AWS_LAMBDA_FUNCTION_NAME``, else the Lambda context's
    ``function_name``; `wait` seconds at most are spent waiting for a slot (cut to the
    invocation's deadline). `key`: a key, or ``key(event, context)`` (the resolver's
    ``current_event`` and the Lambda context) returning the request's key or None."""

    def __init__(
        self, g: Guard, function: str | None = None, *, wait: float = 0.0, key: KeyArg = None
    ) -> None:
        super().__init__()
        self.g, self.function, self.wait = g, function, wait
        self.key = check_key_arg(key)

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        try:
            ctx = app.lambda_context
            k = key_of(self.key, app.current_event, ctx)
            lease = admit(self.g, self.function, ctx, self.wait, k)
        except (Throttled, GuardUnavailable, BadKey) as exc:
            answer = refusal_response(exc)
            return Response(
                status_code=answer["statusCode"], body=answer["body"], headers=answer["headers"]
            )
        try:
            return next_middleware(app)
        finally:
            release(lease)
