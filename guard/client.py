"""The SDK: `Guard` takes a lease at handler entry and gives it back at exit.

An acquire is one round trip (one EVALSHA); so is a release. Waiting for a slot subscribes
to the namespace's release channel, so a release wakes the waiter at once; the refusal's
``retry_after`` bounds each sleep in case no release is published."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar, cast

from . import keys
from .admin_api import AdminAPI
from .backend import Backend
from .errors import GuardError, GuardUnavailable, StoreReset, Throttled, UsageError
from .lease import Lease, Releaser
from .model import check_key, check_name, check_namespace, check_ttl
from .settings import Settings
from .wire import Refusal, parse_lease_id

__all__ = ["Backend", "Guard", "function_name", "parse_lease_id", "remaining_seconds"]

F = TypeVar("F", bound=Callable[..., Any])
# g.limit(key=...): a key, or a callable of (event, context) returning the key or None
KeyArg = str | Callable[[Any, Any], str | None] | None
REDIS_TIMEOUT = 0.05  # default round-trip bound, Redis mode (s)
HTTP_TIMEOUT = 2.0  # default round-trip bound, HTTP mode (s): a service under load

log = logging.getLogger("guard")


def function_name(function: str | None = None, context: Any = None) -> str | None:
    """The guarded name, found the same way by `Guard.acquire`, `Guard.limit` and every
    `guard.aws` adapter: the argument, else ``AWS_LAMBDA_FUNCTION_NAME``, else the Lambda
    context's ``function_name`` (None when all three are missing or empty)."""
    return (
        function
        or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        or getattr(context, "function_name", None)
        or None
    )


def remaining_seconds(context: Any) -> float | None:
    """Seconds left in a Lambda invocation, from its context object (None without one)."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    return get() / 1000.0 if callable(get) else None


class Guard:
    """Concurrency guard for one namespace.

    `on_unavailable` ("open" or "closed") applies when the store cannot be reached and the
    function's own setting has never been seen (cold start); once a call succeeds, the
    function's stored setting is remembered and wins. `lease_margin` is added to a Lambda
    invocation's remaining time to form its lease TTL."""

    RECOVERY_QUIET = 1.0  # s without an unavailable call before a recovery is logged
    WARN_EVERY = 60.0  # s: at most one "unavailable" warning (and its recovery) per period

    def __init__(
        self,
        backend: Backend,
        *,
        namespace: str = "default",
        on_unavailable: str = "open",
        lease_margin: float = 2.0,
        disabled: bool = False,
    ) -> None:
        if on_unavailable not in ("open", "closed"):
            raise UsageError(
                f"on_unavailable must be 'open' or 'closed' (got {on_unavailable!r})",
                "on_unavailable",
            )
        self.backend = backend
        self.namespace = check_namespace(namespace)
        self.on_unavailable = on_unavailable
        self.lease_margin = lease_margin
        self.disabled = disabled
        self._policy: dict[str, str] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._admin: AdminAPI | None = None
        ns = self.namespace
        self._releaser = Releaser(lambda raw: self.backend.release(ns, raw))
        self._down = False  # in a run of unavailable calls (logged at its start and end)
        self._down_logged = False
        self._down_open = self._down_closed = 0
        self._last_failure = self._warned_at = -self.WARN_EVERY
        if disabled:
            log.warning(
                "guard is disabled (GUARD_DISABLED / disabled=True): every lease is "
                "unguarded and no limit is checked"
            )

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "default",
        token: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        quarantine: bool = False,
        max_connections: int | None = None,
        pool_timeout: float | None = None,
        **kwargs: Any,
    ) -> Guard:
        """``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``,
        ``redis+cluster://`` (Redis mode) or ``http(s)://`` (HTTP mode, with `token`).
        `timeout` bounds every round trip, in seconds (default 0.05 in Redis mode, 2.0 in
        HTTP mode). `max_connections` (default 32) caps the connections this client opens
        (per Cluster node); callers beyond it wait for one within their call's deadline.
        `pool_timeout` bounds that wait (default: `timeout`, at least 1 s; a waiting acquire
        may wait for a connection as long as for a slot). `quarantine` (Redis mode) refuses
        grants for one lease TTL after a failover or restart (docs/guarantees.md)."""
        from .connect import DEFAULT_MAX_CONNECTIONS, check_max_connections

        pool = check_max_connections(
            DEFAULT_MAX_CONNECTIONS if max_connections is None else max_connections
        )
        if url.startswith(("http://", "https://")):
            from .http_backend import HttpBackend

            backend: Backend = HttpBackend(
                url,
                token=token,
                timeout=HTTP_TIMEOUT if timeout is None else timeout,
                max_connections=pool,
                pool_timeout=pool_timeout,
            )
        else:
            from .store import RedisStore

            backend = RedisStore.from_url(
                url,
                timeout=REDIS_TIMEOUT if timeout is None else timeout,
                connect_timeout=connect_timeout,
                quarantine=quarantine,
                max_connections=pool,
                pool_timeout=pool_timeout,
            )
        return cls(backend, namespace=namespace, **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Guard:
        """From ``GUARD_REDIS_URL`` (or ``GUARD_URL`` + ``GUARD_TOKEN``), ``GUARD_NAMESPACE``,
        ``GUARD_ON_UNAVAILABLE``, ``GUARD_TIMEOUT``, ``GUARD_MAX_CONNECTIONS``,
        ``GUARD_QUARANTINE`` and the ``GUARD_DISABLED`` kill switch (`guard.settings`);
        `kwargs` win over the environment."""
        st = Settings.from_env()
        url = st.store_url
        if not url and not st.disabled:
            raise UsageError("set GUARD_REDIS_URL (or GUARD_URL) to reach the store", "url")
        kwargs.setdefault("namespace", st.namespace)
        kwargs.setdefault("on_unavailable", st.on_unavailable)
        kwargs.setdefault("disabled", st.disabled)
        if st.quarantine is not None:
            kwargs.setdefault("quarantine", st.quarantine)
        if st.timeout is not None:
            kwargs.setdefault("timeout", st.timeout)
        if st.max_connections is not None:
            kwargs.setdefault("max_connections", st.max_connections)
        if st.url:
            kwargs.setdefault("token", st.token)
        return cls.from_url(url or "redis://localhost:6379/0", **kwargs)

    @property
    def admin(self) -> AdminAPI:
        """Admin operations on this namespace (`guard.admin_api.AdminAPI`): `guard.admin.Admin`
        on Redis, `guard.http_backend.HttpAdmin` in HTTP mode."""
        if self._admin is None:
            self._admin = self.backend.admin(self.namespace)
        return self._admin

    def close(self) -> None:
        self._releaser.close()
        self.backend.close()

    @property
    def pool_exhausted(self) -> int:
        """Calls that found every pooled connection busy for their whole deadline
        (`guard.PoolExhausted`) since this client was made."""
        return self.backend.pool_exhausted

    # -- leases -------------------------------------------------------------------------

    def acquire(
        self,
        function: str | None = None,
        *,
        ttl: float | None = None,
        wait: float = 0.0,
        lease_id: str | bytes | None = None,
        context: Any = None,
        key: str | None = None,
    ) -> Lease:
        """Take a slot of `function` or raise `Throttled` (after waiting up to `wait` s).
        Without `function`, the name is found by `function_name` (environment, `context`).
        `key` (a tenant, customer, API key; the name rule, up to 128 characters) is checked
        against the function's and its groups' per-key limits and key rate (docs/sdk.md
        "Keys"); None: no key.

        The TTL is `ttl`, else the Lambda `context`'s remaining time plus `lease_margin`,
        else the function's ``lease_ttl_seconds``; always capped by the latter."""
        name = self._name(function, context)
        if key is not None:
            check_key(key)
        raw = parse_lease_id(lease_id) if lease_id is not None else os.urandom(16)
        if ttl is None and context is not None:
            left = remaining_seconds(context)
            if left is not None:
                ttl = min(max(left + self.lease_margin, keys.MIN_LEASE_TTL), keys.MAX_LEASE_TTL)
        ttl_ms = keys.ttl_ms(check_ttl(ttl, "ttl")) if ttl is not None else 0
        if wait < 0 or wait != wait:
            raise UsageError(f"wait must be >= 0 seconds (got {wait!r})", "wait")
        if self.disabled:
            return Lease(None, self.namespace, name, raw.hex(), held=False)
        if lease_id is not None:
            self._releaser.cancel(raw)  # asked for again: a pending give-back must not free it
        try:
            return self._acquire(name, raw, ttl_ms, wait, key)
        except Throttled:
            raise
        except GuardUnavailable as exc:
            if exc.in_doubt:  # the store may have granted it: give the lease id back
                self.releaser.submit(raw, name, held=False, cause=exc)
            return self._unavailable(name, raw, exc)

    def _acquire(
        self, name: str, raw: bytes, ttl_ms: int, wait: float, key: str | None = None
    ) -> Lease:
        pending: dict[str, int] = {}
        if self._pending:  # fail-open runs to report: rare, so no lock on the common path
            with self._lock:  # at most MAX_PENDING_NAMES per call; the rest wait their turn
                for k in list(self._pending)[: keys.MAX_PENDING_NAMES]:
                    pending[k] = self._pending.pop(k)
        try:
            if key is None:
                r = self.backend.acquire_waiting(self.namespace, name, raw, ttl_ms, wait, pending)
            else:
                r = self.backend.acquire_waiting(
                    self.namespace, name, raw, ttl_ms, wait, pending, key=key
                )
        except StoreReset:
            raise  # the store answered: the counts it carried were recorded (every reply
            # records them, a refusal too: acquire_lease.lua)
        except GuardError:
            if pending:
                with self._lock:
                    for k, n in pending.items():
                        self._pending[k] = self._pending.get(k, 0) + n
            raise
        if r.on_unavailable:
            self._policy[name] = r.on_unavailable
        if self._down:
            self._recovered()
        if isinstance(r, Refusal):
            raise Throttled(name, r.scope, r.retry_after_ms / 1000)
        return Lease(
            self.backend,
            self.namespace,
            name,
            r.lease_id,
            held=True,
            releaser=self._releaser,
            groups=r.groups,
            expires_at=r.expires_ms / 1000,
            fence=r.fence,
            ttl=r.ttl_ms / 1000,
            shadow_scope=r.shadow_scope or None,
        )

    def _unavailable(self, name: str, raw: bytes, exc: GuardUnavailable) -> Lease:
        closed = self._policy.get(name, self.on_unavailable) == "closed"
        now = time.monotonic()
        with self._lock:  # counted here, reported with the next successful acquire
            self._last_failure = now
            if closed:
                self._down_closed += 1
            else:
                self._down_open += 1
                self._pending[name] = self._pending.get(name, 0) + 1
            log_it = not self._down and now - self._warned_at >= self.WARN_EVERY
            if not self._down:
                self._down, self._down_logged = True, log_it
            if log_it:
                self._warned_at = now
        if log_it:
            log.warning(
                "guard: %s %r (on_unavailable=%s): %s. Until the store answers again, "
                "further calls are counted, not logged.",
                "refusing" if closed else "running unguarded:",
                name,
                "closed" if closed else "open",
                exc,
            )
        if closed:
            raise type(exc)(str(exc), function=name) from exc  # same class, names the function
        return Lease(None, self.namespace, name, raw.hex(), held=False)

    def _recovered(self) -> None:
        """The store answered while unavailable calls were being counted. The run of them
        ends after `RECOVERY_QUIET` s without another (so a flapping store or a saturated
        pool logs one pair of lines, not one per flap)."""
        now = time.monotonic()
        with self._lock:
            if not self._down or now - self._last_failure < self.RECOVERY_QUIET:
                return
            self._down = False
            if not self._down_logged:
                return  # its start was not logged (WARN_EVERY): counts carry to the next
            ran, refused = self._down_open, self._down_closed
            self._down_open = self._down_closed = 0
        log.warning(
            "guard: the store answers again; meanwhile %d runs went unguarded and %d calls "
            "were refused",
            ran,
            refused,
        )

    @property
    def releaser(self) -> Releaser:
        """The background releaser of this client (its thread starts on first use)."""
        return self._releaser

    def unavailable_pending(self) -> dict[str, int]:
        """Fail-open runs counted locally, not yet added to ``guard_unavailable_total``."""
        with self._lock:
            return dict(self._pending)

    def policy(self, function: str) -> str:
        """The on_unavailable policy this client applies to `function` right now."""
        return self._policy.get(function, self.on_unavailable)

    # -- sugar --------------------------------------------------------------------------

    @contextmanager
    def slot(
        self,
        function: str | None = None,
        *,
        ttl: float | None = None,
        wait: float = 0.0,
        context: Any = None,
        renew: bool = False,
        key: str | None = None,
    ) -> Iterator[Lease]:
        """``with g.slot("report-gen", wait=2.0):`` — hold a slot for the block.
        `renew=True` renews in the background (for holds longer than the TTL). `key`: as
        in `acquire`."""
        lease = self.acquire(function, ttl=ttl, wait=wait, context=context, key=key)
        if renew:
            lease.start_renewing()
        try:
            yield lease
        finally:
            with suppress(GuardError):  # the TTL frees the slot; the block's outcome matters
                lease.release()

    def limit(
        self,
        function: str | None = None,
        *,
        ttl: float | None = None,
        wait: float = 0.0,
        renew: bool = False,
        key: KeyArg = None,
    ) -> Callable[[F], F]:
        """Decorator for ``handler(event, context)``. The name defaults to
        ``AWS_LAMBDA_FUNCTION_NAME``, then ``context.function_name`` (`function_name`); the
        lease TTL follows the context's deadline. `key`: a key for every call, or a callable
        taking ``(event, context)`` and returning the call's key or None (no key)."""
        if key is not None and not callable(key):
            check_key(key)

        def wrap(handler: F) -> F:
            @functools.wraps(handler)
            def guarded(*args: Any, **kw: Any) -> Any:
                context = kw.get("context", args[1] if len(args) > 1 else None)
                k = key
                if callable(k):
                    event = kw.get("event", args[0] if args else None)
                    k = k(event, context)
                with self.slot(function, ttl=ttl, wait=wait, context=context, renew=renew, key=k):
                    return handler(*args, **kw)

            return cast(F, guarded)

        return wrap

    def _name(self, function: str | None, context: Any = None) -> str:
        name = function_name(function, context)
        if not name:
            raise UsageError(
                "no function name: pass one, set AWS_LAMBDA_FUNCTION_NAME, or pass a Lambda "
                "context that has function_name",
                "function",
            )
        if name not in self._names:  # validated once per name
            check_name(name, "function")
            if len(self._names) < 10_000:
                self._names.add(name)
        return name
