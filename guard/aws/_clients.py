"""boto3 clients for guard's AWS features, created lazily (boto3 is the ``aws`` extra).

Endpoints follow the SDK convention: ``AWS_ENDPOINT_URL_<SERVICE>`` (e.g.
``AWS_ENDPOINT_URL_SQS``), else ``AWS_ENDPOINT_URL``. Recent botocore reads these itself; passing
them explicitly keeps older botocore and moto/LocalStack setups working the same way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError

ENV_SUFFIX = {
    "sqs": "SQS",
    "lambda": "LAMBDA",
    "resourcegroupstaggingapi": "RESOURCE_GROUPS_TAGGING_API",
}


def endpoint_url(service: str) -> str | None:
    """The endpoint override for `service` from the environment, or None."""
    suffix = ENV_SUFFIX.get(service, service.upper().replace("-", "_"))
    env = os.environ
    return env.get(f"AWS_ENDPOINT_URL_{suffix}") or env.get("AWS_ENDPOINT_URL") or None


def client(service: str, source: Any = None, region: str | None = None) -> Any:
    """A client for `service` from `source`: a mapping of ready clients by service name, a
    ``boto3.session.Session``, or None (a default session)."""
    if isinstance(source, Mapping):
        if service not in source:
            raise UsageError(f"no {service!r} client given (have: {', '.join(source)})", service)
        return source[service]
    if source is None:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UsageError(
                "boto3 is needed for this AWS feature: pip install 'guard-concurrency[aws]'",
                "boto3",
            ) from exc
        source = boto3.session.Session()
    kwargs: dict[str, Any] = {}
    if region:
        kwargs["region_name"] = region
    url = endpoint_url(service)
    if url:
        kwargs["endpoint_url"] = url
    return source.client(service, **kwargs)
