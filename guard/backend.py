"""What a `Guard` and its leases need from a store: the contract the Redis store
(`guard.store.RedisStore`) and the HTTP client (`guard.http_backend.HttpBackend`) implement.

Both also offer a single-attempt ``acquire``; a Guard only ever calls the waiting one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .admin_api import AdminAPI
    from .wire import Grant, Refusal, Renewal


class LeaseBackend(Protocol):
    """The two calls a held lease makes on its own (`guard.Lease.renew` / `release`)."""

    def renew(self, ns: str, lease_id: bytes, ttl_ms: int = 0) -> Renewal | None:
        """Extend a held lease (0: by its own TTL); None when it is no longer held."""
        ...

    def release(self, ns: str, lease_id: bytes) -> bool:
        """Give a lease back; False when it was not held."""
        ...


class Backend(LeaseBackend, Protocol):
    """A store a `Guard` takes leases from and administers."""

    pool_exhausted: int  # pool waits that ran out (guard.PoolExhausted)

    def acquire_waiting(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait: float,
        pending: Mapping[str, int] | None = None,
        *,
        key: str | None = None,
    ) -> Grant | Refusal:
        """Take a slot, waiting up to `wait` seconds for one (woken by releases). `key`: the
        acquire's key (per-key limits and key rate), None for none."""
        ...

    def admin(self, namespace: str) -> AdminAPI:
        """Admin operations on `namespace` over the same store."""
        ...

    def close(self) -> None: ...
