"""boto3 clients for guard's AWS features, created lazily (boto3 is the ``aws`` extra), each
with short botocore timeouts and few retries (`Timeouts`), so no AWS call can hang.

Endpoints follow the SDK convention: ``AWS_ENDPOINT_URL_<SERVICE>`` (e.g.
``AWS_ENDPOINT_URL_SQS``), else ``AWS_ENDPOINT_URL``. Recent botocore reads these itself; passing
them explicitly keeps older botocore and moto/LocalStack setups working the same way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

ENV_SUFFIX = {
    "sqs": "SQS",
    "lambda": "LAMBDA",
    "resourcegroupstaggingapi": "RESOURCE_GROUPS_TAGGING_API",
}
DEFAULT_ATTEMPTS = {"legacy": 5, "standard": 3, "adaptive": 3}  # botocore's, per retry mode
MAX_TIMEOUT = 300.0
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Timeouts:
    """botocore bounds for one call: `connect` and `read` timeouts per attempt (seconds) and
    the total number of `attempts` (standard retry mode)."""

    connect: float
    read: float
    attempts: int

    def worst(self) -> float:
        """The longest one call can take against an endpoint that accepts and never answers:
        every attempt's connect and read timeouts plus botocore's retry sleeps between them
        (at most ``min(2**i, 20)`` s before retry i+1; a server's ``x-amz-retry-after``
        header, which SQS and Lambda do not send, could add up to 5 s more)."""
        sleeps = sum(min(2.0**i, 20.0) for i in range(self.attempts - 1))
        return self.attempts * (self.connect + self.read) + sleeps

    def config(self) -> Any:
        """A ``botocore.config.Config`` carrying these bounds."""
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect,
            read_timeout=self.read,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
        )

    @classmethod
    def of(cls, client: Any) -> Timeouts | None:
        """The bounds a botocore client was made with (None for an object that is not one)."""
        cfg = getattr(getattr(client, "meta", None), "config", None)
        if cfg is None:
            return None
        retries = dict(getattr(cfg, "retries", None) or {})
        if "total_max_attempts" in retries:
            attempts = int(retries["total_max_attempts"])
        elif "max_attempts" in retries:  # botocore's older spelling counts retries only
            attempts = int(retries["max_attempts"]) + 1
        else:
            attempts = DEFAULT_ATTEMPTS.get(str(retries.get("mode", "legacy")), 5)
        return cls(float(cfg.connect_timeout), float(cfg.read_timeout), attempts)

    @classmethod
    def from_env(cls, default: Timeouts) -> Timeouts:
        """`default`, overridden by ``GUARD_AWS_CONNECT_TIMEOUT`` and ``GUARD_AWS_READ_TIMEOUT``
        (seconds, 0 < t <= 300) and ``GUARD_AWS_MAX_ATTEMPTS`` (1..10)."""
        env = os.environ
        connect = _seconds(env.get("GUARD_AWS_CONNECT_TIMEOUT"), "GUARD_AWS_CONNECT_TIMEOUT")
        read = _seconds(env.get("GUARD_AWS_READ_TIMEOUT"), "GUARD_AWS_READ_TIMEOUT")
        raw = env.get("GUARD_AWS_MAX_ATTEMPTS")
        attempts = None
        if raw is not None:
            try:
                attempts = int(raw)
            except ValueError:
                attempts = 0
            if not 1 <= attempts <= MAX_ATTEMPTS:
                raise UsageError(
                    f"GUARD_AWS_MAX_ATTEMPTS must be a whole number 1..{MAX_ATTEMPTS} "
                    f"(got {raw!r})",
                    "GUARD_AWS_MAX_ATTEMPTS",
                )
        return cls(
            connect if connect is not None else default.connect,
            read if read is not None else default.read,
            attempts if attempts is not None else default.attempts,
        )


def _seconds(raw: str | None, name: str) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise UsageError(f"{name} must be seconds, 0 < t <= {MAX_TIMEOUT:g} (got {raw!r})", name)
    return value


# In an invocation (the SQS visibility backoff): a call must fit in the time left, so the
# adapter picks the first of these whose worst case fits (docs/aws.md).
ADAPTER = Timeouts(connect=1.0, read=1.0, attempts=2)  # worst 5 s
ADAPTER_ONCE = Timeouts(connect=1.0, read=1.0, attempts=1)  # worst 2 s
# The operator tool (guard sync-aws): no invocation deadline, but no hang either.
OPERATOR = Timeouts(connect=5.0, read=20.0, attempts=3)  # worst 78 s


def endpoint_url(service: str) -> str | None:
    """The endpoint override for `service` from the environment, or None."""
    suffix = ENV_SUFFIX.get(service, service.upper().replace("-", "_"))
    env = os.environ
    return env.get(f"AWS_ENDPOINT_URL_{suffix}") or env.get("AWS_ENDPOINT_URL") or None


def client(
    service: str,
    source: Any = None,
    region: str | None = None,
    *,
    timeouts: Timeouts | None = None,
) -> Any:
    """A client for `service` from `source`: a mapping of ready clients by service name (used
    as they are), a ``boto3.session.Session``, or None (a default session). A client made
    here carries `timeouts` (default: `OPERATOR`, overridable by ``GUARD_AWS_*``)."""
    if isinstance(source, Mapping):
        if service not in source:
            raise UsageError(f"no {service!r} client given (have: {', '.join(source)})", service)
        return source[service]
    bounds = timeouts or Timeouts.from_env(OPERATOR)
    if source is None:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UsageError(
                "boto3 is needed for this AWS feature: pip install 'guard-concurrency[aws]'",
                "boto3",
            ) from exc
        source = boto3.session.Session()
    kwargs: dict[str, Any] = {"config": bounds.config()}
    if region:
        kwargs["region_name"] = region
    url = endpoint_url(service)
    if url:
        kwargs["endpoint_url"] = url
    return source.client(service, **kwargs)
