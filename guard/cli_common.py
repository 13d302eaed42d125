"""What every ``guard`` command shares: the admin target (HTTP API or Redis) and output.

Admin commands talk to the HTTP API when ``GUARD_URL`` (+ ``GUARD_TOKEN``) is set — what an
operator's laptop can reach — else straight to Redis with ``GUARD_REDIS_URL``. Both are a
`guard.admin_api.AdminAPI` (same methods, same return types), so every command works either
way without knowing which one it has."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from .admin_api import AdminAPI
from .model import Config

ENV_HELP = "GUARD_URL+GUARD_TOKEN (HTTP API) or GUARD_REDIS_URL (Redis)"


class Target:
    """Where admin commands go; built lazily so ``guard serve`` never needs it."""

    def __init__(
        self, namespace: str, url: str | None, token: str | None, redis_url: str | None
    ) -> None:
        self.namespace, self.url, self.token, self.redis_url = namespace, url, token, redis_url
        self._admin: AdminAPI | None = None

    def admin(self, namespace: str | None = None) -> AdminAPI:
        if self._admin is None:
            if self.url:
                from .http_backend import HttpBackend

                self._admin = HttpBackend(self.url, self.token, 10.0).admin(self.namespace)
            elif self.redis_url:
                from .store import RedisStore

                self._admin = RedisStore.from_url(self.redis_url, timeout=5.0).admin(self.namespace)
            else:
                raise click.UsageError(f"set {ENV_HELP} (or --url / --redis-url)")
        return self._admin if namespace is None else self._admin.for_namespace(namespace)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def read_config(self, ns: str) -> Config:
        return self.admin(ns).config()

    def write_config(self, ns: str, cfg: Config) -> None:
        self.admin(ns).replace_config(cfg)

    def release(self, lease_id: bytes) -> bool:
        return self.admin().release_lease(lease_id)

    def leases(self, function: str | None) -> list[dict[str, Any]]:
        return [info.to_doc() for info in self.admin().leases(function)]


pass_target = click.make_pass_decorator(Target)

JSON: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--json", "as_json", is_flag=True, help="print JSON (the HTTP API's body)"
)


def echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def limit_arg(value: str | None) -> int | None:
    """``none``/``unlimited`` → None (no limit); else an integer."""
    if value is None or value.lower() in ("none", "null", "unlimited"):
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected an integer or 'none', got {value!r}") from None
