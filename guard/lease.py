"""A held slot, the background renewer for long holds, and the background releaser for
lease ids the store could not be told about at once."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from . import keys
from .errors import GuardError, GuardUnavailable, StoreError
from .model import check_ttl

if TYPE_CHECKING:
    from .backend import LeaseBackend

log = logging.getLogger("guard")


class Lease:
    """One slot of `function`. Release it (or leave the ``with`` block) when the work ends.

    A lease holds what it needs to renew and release itself: the store client (`backend`)
    and `namespace` it was granted in, and the background `releaser` of its `Guard` for a
    release the store cannot be told about at once.

    `held` is False for an *unguarded* lease: the store was out of reach and the function's
    ``on_unavailable`` was ``"open"``, or guard is disabled; such a lease runs the function
    without counting it, and renew/release are no-ops. `expires_at` is server time (epoch
    seconds). `fence` increases with every grant in the namespace: pass it to a downstream
    store to reject writes from a holder whose lease was lost (see docs/guarantees.md)."""

    __slots__ = (
        "_backend",
        "_releaser",
        "_renewer",
        "expires_at",
        "fence",
        "function",
        "groups",
        "held",
        "lease_id",
        "lost",
        "namespace",
        "shadow_scope",
        "ttl",
    )

    def __init__(
        self,
        backend: LeaseBackend | None,
        namespace: str,
        function: str,
        lease_id: str,
        *,
        held: bool,
        releaser: Releaser | None = None,
        groups: tuple[str, ...] = (),
        expires_at: float = 0.0,
        fence: int = 0,
        ttl: float = 0.0,
        shadow_scope: str | None = None,
    ) -> None:
        self._backend = backend
        self._releaser = releaser
        self._renewer: _Renewer | None = None
        self.namespace = namespace
        self.function = function
        self.lease_id = lease_id
        self.held = held
        self.groups = groups
        self.expires_at = expires_at
        self.fence = fence
        self.ttl = ttl
        self.shadow_scope = shadow_scope
        self.lost = False

    @property
    def unguarded(self) -> bool:
        return not self.held and not self.lost

    def renew(self, ttl: float | None = None) -> bool:
        """Extend the lease by its TTL (or `ttl` seconds, capped by the function's
        ``lease_ttl_seconds``). False: the lease was lost (expired or released) and the
        slot may already belong to someone else — stop the work."""
        if not self.held or self._backend is None:
            return False
        ttl_ms = keys.ttl_ms(check_ttl(ttl, "ttl")) if ttl is not None else 0
        r = self._backend.renew(self.namespace, bytes.fromhex(self.lease_id), ttl_ms)
        if r is None:
            self.held, self.lost = False, True
            return False
        self.expires_at, self.ttl = r.expires_ms / 1000, r.ttl_ms / 1000
        return True

    def release(self) -> bool:
        """Give the slot back. Idempotent; True only when this call released a held lease.

        When the store cannot be told now (unreachable, a timeout, every pooled connection
        busy), the release is retried in the background and this returns False; an error
        no retry can fix is logged with the lease id and raised."""
        if self._renewer is not None:
            self._renewer.stop()
            self._renewer = None
        if not self.held or self._backend is None:
            return False
        self.held = False
        raw = bytes.fromhex(self.lease_id)
        try:
            return self._backend.release(self.namespace, raw)
        except GuardUnavailable as exc:
            if isinstance(exc, StoreError) or self._releaser is None:
                self._release_failed(exc)
                raise
            # Transient (unreachable, a timeout, the pool busy): retried in the background,
            # so the slot is not held until its TTL.
            self._releaser.submit(
                raw, self.function, held=True, expires_at=self.expires_at, cause=exc
            )
            return False
        except GuardError as exc:
            self._release_failed(exc)
            raise

    def _release_failed(self, exc: GuardError) -> None:
        log.error(
            "guard: could not release lease %s of %r: %s; its slot stays taken until the "
            "lease expires",
            self.lease_id,
            self.function,
            exc,
        )

    def start_renewing(self, every: float | None = None) -> None:
        """Renew in a daemon thread every `every` seconds (default: a third of the TTL)."""
        if self.held and self._renewer is None:
            self._renewer = _Renewer(self, every or max(self.ttl / 3, 0.05))
            self._renewer.start()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else ("lost" if self.lost else "unguarded")
        return f"<Lease {self.function} {self.lease_id} {state} fence={self.fence}>"


class _Renewer(threading.Thread):
    def __init__(self, lease: Lease, every: float) -> None:
        super().__init__(name=f"guard-renew-{lease.function}", daemon=True)
        self.lease, self.every = lease, every
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                if not self.lease.renew():
                    return
            except GuardError:
                continue  # store out of reach: try again next period, the TTL still runs


class Releaser:
    """Gives lease ids back in the background when the store could not be told at once.

    Two cases: a release that failed for a transient reason (store unreachable, a timeout,
    every pooled connection busy), and an acquire whose answer never came (`in_doubt`: the
    store may have granted the lease id the client chose). Each is retried with growing
    delays, at most `DELAYS` attempts (about 20 s in all) and never past the lease's own
    expiry; at most `MAX_PENDING` lease ids wait at once. A held lease that cannot be given
    back is logged (ERROR) with its lease id: its slot stays taken until the lease expires.
    One daemon thread per Guard, started on first use."""

    DELAYS = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 7.0)
    MAX_PENDING = 1000

    def __init__(self, release: Callable[[bytes], bool]) -> None:
        self._release = release
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Pending]] = []
        self._ids: dict[bytes, _Pending] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0  # lease ids given up on (retries spent, or too many pending)

    def submit(
        self,
        lease_id: bytes,
        function: str,
        *,
        held: bool,
        expires_at: float = 0.0,
        cause: BaseException | None = None,
    ) -> None:
        """Release `lease_id` in the background. `held`: it was a granted lease (its loss is
        logged); otherwise an acquire in doubt. `expires_at` (epoch s, 0 unknown) ends the
        retries: an expired lease frees its slot by itself."""
        item = _Pending(lease_id, function, held, expires_at, cause)
        with self._cond:
            if self._closed or lease_id in self._ids:
                return
            if len(self._ids) >= self.MAX_PENDING:
                self._give_up(item, "too many releases pending")
                return
            self._ids[lease_id] = item
            self._push(item, self.DELAYS[0])
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="guard-release", daemon=True)
                self._thread.start()
            self._cond.notify()

    def cancel(self, lease_id: bytes) -> None:
        """The caller acquires this lease id again: the pending release must not free it."""
        with self._cond:
            item = self._ids.pop(lease_id, None)
            if item is not None:
                item.cancelled = True

    def pending(self) -> int:
        with self._cond:
            return len(self._ids)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _push(self, item: _Pending, delay: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time.monotonic() + delay, self._seq, item))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, _, item = heapq.heappop(self._heap)
                if item.cancelled:
                    continue
            self._attempt(item)

    def _attempt(self, item: _Pending) -> None:
        item.attempts += 1
        try:
            try:
                self._release(item.lease_id)
            except GuardError:
                raise
            except Exception as exc:  # the client was closed under it (a raw socket error)
                if self._closed:
                    return
                raise GuardUnavailable(f"release: {exc!r}") from exc
        except GuardUnavailable as exc:
            if not isinstance(exc, StoreError):
                item.cause = exc
                expired = item.expires_at and time.time() > item.expires_at
                with self._cond:
                    if item.attempts < len(self.DELAYS) and not expired and not item.cancelled:
                        self._push(item, self.DELAYS[item.attempts])
                        return
                    self._ids.pop(item.lease_id, None)
                    self._give_up(item, "retries spent" if not expired else "lease expired")
                return
            item.cause = exc
        except GuardError as exc:
            item.cause = exc
        else:
            with self._cond:
                self._ids.pop(item.lease_id, None)
            return
        with self._cond:  # an error a retry cannot fix
            self._ids.pop(item.lease_id, None)
            self._give_up(item, "store error")

    def _give_up(self, item: _Pending, why: str) -> None:
        self.dropped += 1
        if item.held:
            log.error(
                "guard: could not release lease %s of %r (%s; last error: %s); its slot "
                "stays taken until the lease expires",
                item.lease_id.hex(),
                item.function,
                why,
                item.cause,
            )
        elif self.dropped == 1:
            log.warning(
                "guard: could not give back lease id %s of %r whose acquire timed out (%s; "
                "%s); if the store granted it, it frees when it expires (logged once)",
                item.lease_id.hex(),
                item.function,
                why,
                item.cause,
            )


class _Pending:
    __slots__ = ("attempts", "cancelled", "cause", "expires_at", "function", "held", "lease_id")

    def __init__(
        self,
        lease_id: bytes,
        function: str,
        held: bool,
        expires_at: float,
        cause: BaseException | None,
    ) -> None:
        self.lease_id = lease_id
        self.function = function
        self.held = held
        self.expires_at = expires_at
        self.cause = cause
        self.attempts = 0
        self.cancelled = False
