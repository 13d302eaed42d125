"""Every ``GUARD_*`` environment variable, read in one place: `Settings.from_env`.

The SDK (`guard.Guard.from_env`), the HTTP server's `create_app` and ``guard serve`` each read
the environment once through it, so a variable means the same thing everywhere and a bad
value is a `guard.UsageError` naming the variable. Each field records its variable and who
reads it (``sdk``, ``server`` or both): `server_env` is what a server container can be
configured with (the deploy assets are checked against it).

The kill switch ``GUARD_DISABLED`` turns every lease into an unguarded one; the `Guard` it
reaches logs that at WARNING when it is built (one place, whether the switch came from the
environment or from ``disabled=True``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import UsageError

TRUE = ("1", "true", "yes", "on")
DEFAULT_SERVER_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MAX_WAITERS = 64  # acquires that may wait per namespace and server worker
DEFAULT_BODY_TIMEOUT = 10.0  # seconds a server worker waits for a request body


def _env(name: str, *who: str) -> Any:
    return {"env": name, "who": who}


def _flag(v: str) -> bool:
    return v.strip().lower() in TRUE


def _names(v: str) -> tuple[str, ...]:
    """A comma-separated list (tokens, namespaces), blanks dropped."""
    return tuple(t.strip() for t in v.split(",") if t.strip())


def _number(v: str, name: str, attr: str, low: float, high: float, kind: type = float) -> Any:
    """A number in (low, high]; the error names the variable, its field is the setting's."""
    try:
        n = kind(v.strip())
    except ValueError:
        n = math.nan
    if not (low < n <= high):  # NaN fails too
        what = "an integer" if kind is int else "a number"
        raise UsageError(f"{name} must be {what} in ({low:g}, {high:g}] (got {v!r})", attr)
    return n


@dataclass(frozen=True)
class Settings:
    """What the environment says; a field is its default when its variable is unset."""

    # where the store is
    redis_url: str | None = field(default=None, metadata=_env("GUARD_REDIS_URL", "sdk", "server"))
    url: str | None = field(default=None, metadata=_env("GUARD_URL", "sdk"))
    token: str | None = field(default=None, metadata=_env("GUARD_TOKEN", "sdk"))
    namespace: str = field(default="default", metadata=_env("GUARD_NAMESPACE", "sdk", "server"))
    # the SDK
    on_unavailable: str = field(default="open", metadata=_env("GUARD_ON_UNAVAILABLE", "sdk"))
    timeout: float | None = field(default=None, metadata=_env("GUARD_TIMEOUT", "sdk"))
    max_connections: int | None = field(default=None, metadata=_env("GUARD_MAX_CONNECTIONS", "sdk"))
    quarantine: bool | None = field(
        default=None, metadata=_env("GUARD_QUARANTINE", "sdk", "server")
    )
    disabled: bool = field(default=False, metadata=_env("GUARD_DISABLED", "sdk"))
    # the HTTP server and `guard serve`
    redis_timeout: float = field(default=1.0, metadata=_env("GUARD_REDIS_TIMEOUT", "server"))
    admin_tokens: tuple[str, ...] = field(default=(), metadata=_env("GUARD_ADMIN_TOKENS", "server"))
    client_tokens: tuple[str, ...] = field(
        default=(), metadata=_env("GUARD_CLIENT_TOKENS", "server")
    )
    tokens_file: str | None = field(default=None, metadata=_env("GUARD_TOKENS_FILE", "server"))
    metrics_token: str | None = field(default=None, metadata=_env("GUARD_METRICS_TOKEN", "server"))
    metrics_token_required: bool = field(
        default=False, metadata=_env("GUARD_METRICS_TOKEN_REQUIRED", "server")
    )
    metrics_namespaces: tuple[str, ...] = field(
        default=(), metadata=_env("GUARD_METRICS_NAMESPACES", "server")
    )
    max_waiters: int = field(
        default=DEFAULT_MAX_WAITERS, metadata=_env("GUARD_MAX_WAITERS", "server")
    )
    workers: int = field(default=2, metadata=_env("GUARD_WORKERS", "server"))
    config_path: str | None = field(default=None, metadata=_env("GUARD_CONFIG", "server"))
    config_check_seconds: float = field(
        default=10.0, metadata=_env("GUARD_CONFIG_CHECK_SECONDS", "server")
    )
    worker_connections: int = field(
        default=1000, metadata=_env("GUARD_WORKER_CONNECTIONS", "server")
    )
    body_timeout: float = field(
        default=DEFAULT_BODY_TIMEOUT, metadata=_env("GUARD_BODY_TIMEOUT", "server")
    )
    access_log: str | None = field(default=None, metadata=_env("GUARD_ACCESS_LOG", "server"))
    log_level: str = field(default="info", metadata=_env("GUARD_LOG_LEVEL", "server"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read `env` (default: ``os.environ``) once. Empty values count as unset."""
        if env is None:
            env = os.environ
        given: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name, "")
            if raw == "":
                continue
            given[f.name] = _parse(f.name, name, raw)
        return cls(**given)

    @property
    def store_url(self) -> str | None:
        """The SDK's store: the HTTP API (``GUARD_URL``) when set, else Redis."""
        return self.url or self.redis_url


def _parse(attr: str, name: str, raw: str) -> Any:
    if attr in ("quarantine", "disabled", "metrics_token_required"):
        return _flag(raw)
    if attr in ("admin_tokens", "client_tokens", "metrics_namespaces"):
        return _names(raw)
    if attr == "timeout":
        return _number(raw, name, attr, 0, 300)
    if attr in ("redis_timeout", "body_timeout", "config_check_seconds"):
        return _number(raw, name, attr, 0, 86400)
    if attr == "max_connections":
        return _number(raw, name, attr, 0, 10_000, int)
    if attr == "max_waiters":  # 0: no acquire waits
        return _number(raw, name, attr, -1, 1_000_000, int)
    if attr in ("workers", "worker_connections"):
        return _number(raw, name, attr, 0, 1_000_000, int)
    return raw


def server_env() -> frozenset[str]:
    """The variables the HTTP server and ``guard serve`` read."""
    return frozenset(f.metadata["env"] for f in fields(Settings) if "server" in f.metadata["who"])


def sdk_env() -> frozenset[str]:
    """The variables `guard.Guard.from_env` reads."""
    return frozenset(f.metadata["env"] for f in fields(Settings) if "sdk" in f.metadata["who"])
