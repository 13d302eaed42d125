"""An API Gateway / function-URL handler guarded by guard.

On Lambda: handler = ``handler.handler``; set GUARD_REDIS_URL (or GUARD_URL + GUARD_TOKEN)
and GUARD_NAMESPACE. In a container: ``python handler.py`` serves the same handler with Flask."""

from __future__ import annotations

import json
import os
from typing import Any

import guard
import guard.aws

g = guard.Guard.from_env()  # once per cold start; the connection is reused


@guard.aws.api_gateway(g)  # name: AWS_LAMBDA_FUNCTION_NAME; 429 + Retry-After when refused
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    order_id = (event.get("pathParameters") or {}).get("order_id", "?")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"order_id": order_id, "status": "shipped"}),
    }


def create_app() -> Any:
    """The same handler on Flask (ECS, Kubernetes, your laptop)."""
    from flask import Flask

    from guard.aws.flask import mount

    app = Flask(__name__)
    mount(
        app,
        "/orders/<order_id>",
        handler,
        methods=["GET"],
        function_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "orders-api"),
    )
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
