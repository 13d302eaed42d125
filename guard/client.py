"""The SDK: `Guard` takes a lease at handler entry and gives it back at exit.

An acquire is one round trip (one EVALSHA); so is a release. Waiting for a slot subscribes
to the namespace's release channel, so a release wakes the waiter at once; the refusal's
``retry_after`` bounds each sleep in case no release is published."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol, TypeVar, cast

from . import keys
from .errors import GuardError, GuardUnavailable, StoreReset, Throttled, UsageError
from .lease import Lease
from .model import check_name, check_namespace, check_ttl
from .store import Grant, Refusal, Renewal

F = TypeVar("F", bound=Callable[..., Any])
TRUE = ("1", "true", "yes", "on")


class Backend(Protocol):
    """What a Guard needs from a store: the Redis store, or the HTTP client (HTTP mode).
    Both also offer a single-attempt ``acquire``; a Guard only ever calls the waiting one."""

    def renew(self, ns: str, lease_id: bytes, ttl_ms: int = 0) -> Renewal | None: ...

    def release(self, ns: str, lease_id: bytes) -> bool: ...

    def acquire_waiting(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait: float,
        pending: dict[str, int] | None = None,
    ) -> Grant | Refusal:
        """Take a slot, waiting up to `wait` seconds for one (woken by releases)."""

    def admin(self, namespace: str) -> Any:
        """Admin operations on `namespace` over the same store (`guard.admin.Admin` or its
        HTTP twin)."""

    def close(self) -> None: ...


def parse_lease_id(value: str | bytes) -> bytes:
    """A lease id is 128 bits: 32 hex digits (a UUID's dashes are allowed) or 16 bytes."""
    if isinstance(value, bytes) and len(value) == 16:
        return value
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value.replace("-", ""))
        except ValueError:
            raw = b""
        if len(raw) == 16:
            return raw
    raise UsageError(f"lease_id must be 32 hex digits (128 bits), got {value!r}", "lease_id")


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
        self._admin: Any = None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "default",
        token: str | None = None,
        timeout: float = 0.05,
        connect_timeout: float | None = None,
        quarantine: bool = False,
        **kwargs: Any,
    ) -> Guard:
        """``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``,
        ``redis+cluster://`` (Redis mode) or ``http(s)://`` (HTTP mode, with `token`).
        `timeout` bounds every round trip, in seconds. `quarantine` (Redis mode) refuses
        grants for one lease TTL after a failover or restart (docs/guarantees.md)."""
        if url.startswith(("http://", "https://")):
            from .http_backend import HttpBackend

            backend: Backend = HttpBackend(url, token=token, timeout=timeout)
        else:
            from .store import RedisStore

            backend = RedisStore.from_url(
                url, timeout=timeout, connect_timeout=connect_timeout, quarantine=quarantine
            )
        return cls(backend, namespace=namespace, **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Guard:
        """From ``GUARD_REDIS_URL`` (or ``GUARD_URL`` + ``GUARD_TOKEN``), ``GUARD_NAMESPACE``,
        ``GUARD_ON_UNAVAILABLE``, ``GUARD_TIMEOUT``, ``GUARD_QUARANTINE`` and the
        ``GUARD_DISABLED`` kill switch."""
        env = os.environ
        url = env.get("GUARD_URL") or env.get("GUARD_REDIS_URL")
        disabled = env.get("GUARD_DISABLED", "").lower() in TRUE
        if not url and not disabled:
            raise UsageError("set GUARD_REDIS_URL (or GUARD_URL) to reach the store", "url")
        kwargs.setdefault("namespace", env.get("GUARD_NAMESPACE", "default"))
        kwargs.setdefault("on_unavailable", env.get("GUARD_ON_UNAVAILABLE", "open"))
        kwargs.setdefault("disabled", disabled)
        if "GUARD_QUARANTINE" in env:
            kwargs.setdefault("quarantine", env["GUARD_QUARANTINE"].lower() in TRUE)
        if "GUARD_TIMEOUT" in env:
            kwargs.setdefault("timeout", float(env["GUARD_TIMEOUT"]))
        if env.get("GUARD_URL"):
            kwargs.setdefault("token", env.get("GUARD_TOKEN"))
        return cls.from_url(url or "redis://localhost:6379/0", **kwargs)

    @property
    def admin(self) -> Any:
        """Admin operations on this namespace: `guard.admin.Admin` on Redis, its HTTP twin
        (`guard.http_backend.HttpAdmin`) in HTTP mode."""
        if self._admin is None:
            self._admin = self.backend.admin(self.namespace)
        return self._admin

    def close(self) -> None:
        self.backend.close()

    # -- leases -------------------------------------------------------------------------

    def acquire(
        self,
        function: str | None = None,
        *,
        ttl: float | None = None,
        wait: float = 0.0,
        lease_id: str | bytes | None = None,
        context: Any = None,
    ) -> Lease:
        """Take a slot of `function` or raise `Throttled` (after waiting up to `wait` s).

        The TTL is `ttl`, else the Lambda `context`'s remaining time plus `lease_margin`,
        else the function's ``lease_ttl_seconds``; always capped by the latter."""
        name = self._name(function)
        raw = parse_lease_id(lease_id) if lease_id is not None else os.urandom(16)
        if ttl is None and context is not None:
            left = remaining_seconds(context)
            if left is not None:
                ttl = min(max(left + self.lease_margin, keys.MIN_LEASE_TTL), keys.MAX_LEASE_TTL)
        ttl_ms = keys.ttl_ms(check_ttl(ttl, "ttl")) if ttl is not None else 0
        if wait < 0 or wait != wait:
            raise UsageError(f"wait must be >= 0 seconds (got {wait!r})", "wait")
        if self.disabled:
            return Lease(None, name, raw.hex(), held=False)
        try:
            return self._acquire(name, raw, ttl_ms, wait)
        except Throttled:
            raise
        except GuardUnavailable as exc:
            return self._unavailable(name, raw, exc)

    def _acquire(self, name: str, raw: bytes, ttl_ms: int, wait: float) -> Lease:
        pending: dict[str, int] = {}
        if self._pending:  # fail-open runs to report: rare, so no lock on the common path
            with self._lock:  # at most MAX_PENDING_NAMES per call; the rest wait their turn
                for k in list(self._pending)[: keys.MAX_PENDING_NAMES]:
                    pending[k] = self._pending.pop(k)
        try:
            r = self.backend.acquire_waiting(self.namespace, name, raw, ttl_ms, wait, pending)
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
        if isinstance(r, Refusal):
            raise Throttled(name, r.scope, r.retry_after_ms / 1000)
        return Lease(
            self,
            name,
            raw.hex(),
            held=True,
            groups=r.groups,
            expires_at=r.expires_ms / 1000,
            fence=r.fence,
            ttl=r.ttl_ms / 1000,
            shadow_scope=r.shadow_scope or None,
        )

    def _unavailable(self, name: str, raw: bytes, exc: GuardUnavailable) -> Lease:
        if self._policy.get(name, self.on_unavailable) == "closed":
            raise type(exc)(str(exc), function=name) from exc  # same class, names the function
        with self._lock:  # counted here, reported with the next successful acquire
            self._pending[name] = self._pending.get(name, 0) + 1
        return Lease(None, name, raw.hex(), held=False)

    def _renew(self, lease: Lease, ttl: float | None) -> bool:
        ttl_ms = keys.ttl_ms(check_ttl(ttl, "ttl")) if ttl is not None else 0
        r = self.backend.renew(self.namespace, bytes.fromhex(lease.lease_id), ttl_ms)
        if r is None:
            return False
        lease.expires_at, lease.ttl = r.expires_ms / 1000, r.ttl_ms / 1000
        return True

    def _release(self, lease: Lease) -> bool:
        return self.backend.release(self.namespace, bytes.fromhex(lease.lease_id))

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
    ) -> Iterator[Lease]:
        """``with g.slot("report-gen", wait=2.0):`` — hold a slot for the block.
        `renew=True` renews in the background (for holds longer than the TTL)."""
        lease = self.acquire(function, ttl=ttl, wait=wait, context=context)
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
    ) -> Callable[[F], F]:
        """Decorator for ``handler(event, context)``. The name defaults to
        ``AWS_LAMBDA_FUNCTION_NAME``; the lease TTL follows the context's deadline."""

        def wrap(handler: F) -> F:
            @functools.wraps(handler)
            def guarded(*args: Any, **kw: Any) -> Any:
                context = kw.get("context", args[1] if len(args) > 1 else None)
                with self.slot(function, ttl=ttl, wait=wait, context=context, renew=renew):
                    return handler(*args, **kw)

            return cast(F, guarded)

        return wrap

    def _name(self, function: str | None) -> str:
        name = function or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if not name:
            raise UsageError(
                "no function name: pass one or set AWS_LAMBDA_FUNCTION_NAME", "function"
            )
        if name not in self._names:  # validated once per name
            check_name(name, "function")
            if len(self._names) < 10_000:
                self._names.add(name)
        return name
