"""AWS integration (extra ``aws``): Lambda handler adapters, group sync, handlers on Flask.

    import guard, guard.aws

    g = guard.Guard.from_env()

    @guard.aws.api_gateway(g)            # 429 + Retry-After when refused
    def handler(event, context): ...

    @guard.aws.sqs(g, on_throttle="report", visibility_backoff=(30, 90))
    def consume(event, context): ...

Web frameworks have their own integrations, each answering a refusal with a real 429/503:
`guard.aws.chalice` (Chalice middleware), `guard.aws.powertools` (Powertools resolver
middleware), `guard.aws.asgi` (ASGI middleware, e.g. FastAPI behind Mangum); docs/aws.md says
which wrapper fits which handler.

This package imports neither boto3, Flask nor a web framework: boto3 loads only for a
visibility backoff or a sync (`guard.aws.sync`), Flask only with `guard.aws.flask`, each
framework only with its integration."""

from __future__ import annotations

from .adapters import api_gateway, sqs

__all__ = ["api_gateway", "sqs"]
