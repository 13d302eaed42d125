"""The admin contract: what `Guard.admin` and the ``guard`` CLI can do to one namespace,
whichever way the store is reached.

Two implementations, same methods and return types: `guard.admin.Admin` (straight to Redis)
and `guard.http_backend.HttpAdmin` (over the HTTP API). Documents (dicts) are the HTTP API's
bodies; `config`/`replace_config` use the `guard.model.Config` value; leases are
`guard.wire.LeaseInfo`. Reads of a resource that does not exist return None (get) or False
(delete); a PATCH of one raises `guard.NotFound`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .model import Config
    from .wire import LeaseInfo


class AdminAPI(Protocol):
    """Admin operations on `namespace` (and, through `for_namespace`, on any other)."""

    namespace: str

    def for_namespace(self, namespace: str) -> AdminAPI:
        """The same admin over the same connection, acting on `namespace`."""
        ...

    # -- namespaces and the whole config --------------------------------------------------

    def list_namespaces(self) -> list[str]: ...

    def get_namespace(self) -> dict[str, Any]: ...

    def set_namespace(
        self,
        *,
        max_concurrency: int | None,
        rate_per_second: float | None = None,
        rate_burst: int | None = None,
    ) -> dict[str, Any]:
        """Replace the account-level settings: max and rate (the HTTP PUT)."""
        ...

    def config(self) -> Config:
        """The namespace's whole settings."""
        ...

    def replace_config(self, cfg: Config) -> Config:
        """Make the namespace hold exactly `cfg`, in one atomic write (``guard apply``)."""
        ...

    def usage(self) -> dict[str, Any]:
        """In use against limits at every level (expired leases reaped first)."""
        ...

    def key_usage(self, kind: str, name: str, top: int = 10) -> dict[str, Any]:
        """The `top` (1..1000) keys by in use at a function or group (`kind` "function" or
        "group"), each with its cap there; ``complete`` is false when the bounded scan of
        the namespace's counters stopped early (docs/http.md "Per-key usage")."""
        ...

    # -- groups and functions -------------------------------------------------------------

    def list_groups(self) -> list[dict[str, Any]]: ...

    def get_group(self, name: str) -> dict[str, Any] | None: ...

    def put_group(self, name: str, **fields: Any) -> dict[str, Any]: ...

    def patch_group(self, name: str, **fields: Any) -> dict[str, Any]: ...

    def delete_group(self, name: str) -> bool: ...

    def list_functions(self) -> list[dict[str, Any]]: ...

    def get_function(self, name: str) -> dict[str, Any] | None: ...

    def put_function(self, name: str, **fields: Any) -> dict[str, Any]: ...

    def patch_function(self, name: str, **fields: Any) -> dict[str, Any]: ...

    def delete_function(self, name: str) -> bool: ...

    # -- temporary overrides and the audit log (guard.overrides) ----------------------------

    def override(
        self, kind: str, name: str, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]:
        """Cap (0: pause) a function or group (`kind` "function" or "group") for `seconds`
        (server time), whatever its settings say; re-applying a limits file keeps it."""
        ...

    def override_function(
        self, name: str, *, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]: ...

    def override_group(
        self, name: str, *, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]: ...

    def clear_override(self, kind: str, name: str) -> bool:
        """End an override now; False when none was in force."""
        ...

    def overrides(self) -> list[dict[str, Any]]:
        """The overrides in force, each with the seconds it has left."""
        ...

    def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` (1..1000) config writes of the namespace, newest first."""
        ...

    # -- leases ---------------------------------------------------------------------------

    def leases(self, function: str | None = None) -> list[LeaseInfo]:
        """Held leases (expired ones excluded), optionally of one function, by fence."""
        ...

    def release_lease(self, lease_id: bytes) -> bool:
        """End a held lease now (an operator's release); False when it was not held."""
        ...

    def close(self) -> None:
        """Close the connection this admin uses (shared with the `Guard` it came from)."""
        ...
