"""The one error hierarchy of guard. Every error the SDK raises derives from `GuardError`;
the HTTP service maps each class to one status code (see `guard.server.errors`)."""

from __future__ import annotations


class GuardError(Exception):
    """Base of every error guard raises."""


class UsageError(GuardError, ValueError):
    """A bad argument or setting. `field` names what was wrong (e.g. ``max_concurrency``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConflictError(GuardError):
    """A write that contradicts the stored settings (e.g. the sum of ``reserved`` above the
    account max, or a function in two reserving groups). Nothing was written."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(GuardError, LookupError):
    """The named group, function, namespace or lease does not exist."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NamespaceNotFound(NotFound):
    """A lease request over HTTP for a namespace that has no configuration (HTTP clients
    cannot create namespaces; the SDK on Redis runs without configuration)."""


class Throttled(GuardError):
    """No slot: the level named by `scope` is at its limit — ``"function"``,
    ``"group:<name>"``, ``"account"``, ``"key"`` or ``"group-key:<name>"`` (concurrency:
    `retry_after` is a hint in seconds), or a rate level ``"rate:account"``,
    ``"rate:group:<name>"``, ``"rate:function"``, ``"rate:key"`` (`retry_after` is exact:
    the server time until a token is available there)."""

    def __init__(self, function: str, scope: str, retry_after: float) -> None:
        super().__init__(f"{function!r} throttled by {scope} limit; retry after {retry_after:.3f}s")
        self.function = function
        self.scope = scope
        self.retry_after = retry_after


class GuardUnavailable(GuardError):
    """The store could not be reached within the deadline and the function's
    ``on_unavailable`` is ``"closed"``. The cause is chained (``__cause__``).

    `in_doubt` is True when the request was sent and no answer came in time: the store may
    have acted on it (the SDK then gives back the lease id it chose, in the background)."""

    def __init__(
        self, message: str, function: str | None = None, *, in_doubt: bool = False
    ) -> None:
        super().__init__(message)
        self.function = function
        self.in_doubt = in_doubt


class PoolExhausted(GuardUnavailable):
    """Every connection of this client's pool (``max_connections``) stayed busy for the
    whole deadline of the call: more callers in flight in this process than connections.
    A local saturation, not an unreachable store; nothing was sent. ``on_unavailable``
    applies to it as to an unreachable store (docs/sdk.md says why)."""


class StoreError(GuardUnavailable):
    """The store answered with an error guard cannot recover from (wrapping the driver's)."""


class StoreReset(GuardUnavailable):
    """A namespace this client saw configured has no configuration any more: the store was
    reset. Treated like an unreachable store (``on_unavailable`` decides) until the
    configuration is back. The acquire that found it changed nothing: its lease was given
    back, and the fail-open counts it carried were recorded."""


class ProtocolMismatch(StoreError):
    """The namespace's stored formats are of another protocol major version than this
    client's scripts (docs/protocol.md "Versioning"): the client refuses rather than misread
    them, and writes nothing. Upgrade the client (or re-apply the configuration with an admin
    of the client's version). Handled like an unreachable store (``on_unavailable``)."""
