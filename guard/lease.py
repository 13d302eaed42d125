"""A held slot, and the background renewer for long holds."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import Guard


class Lease:
    """One slot of `function`. Release it (or leave the ``with`` block) when the work ends.

    `held` is False for an *unguarded* lease: the store was out of reach and the function's
    ``on_unavailable`` was ``"open"``, or guard is disabled; such a lease runs the function
    without counting it, and renew/release are no-ops. `expires_at` is server time (epoch
    seconds). `fence` increases with every grant in the namespace: pass it to a downstream
    store to reject writes from a holder whose lease was lost (see docs/guarantees.md)."""

    __slots__ = (
        "_guard",
        "_renewer",
        "expires_at",
        "fence",
        "function",
        "groups",
        "held",
        "lease_id",
        "lost",
        "shadow_scope",
        "ttl",
    )

    def __init__(
        self,
        guard: Guard | None,
        function: str,
        lease_id: str,
        *,
        held: bool,
        groups: tuple[str, ...] = (),
        expires_at: float = 0.0,
        fence: int = 0,
        ttl: float = 0.0,
        shadow_scope: str | None = None,
    ) -> None:
        self._guard = guard
        self._renewer: _Renewer | None = None
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
        if not self.held or self._guard is None:
            return False
        ok = self._guard._renew(self, ttl)
        if not ok:
            self.held, self.lost = False, True
        return ok

    def release(self) -> bool:
        """Give the slot back. Idempotent; True only when this call released a held lease."""
        if self._renewer is not None:
            self._renewer.stop()
            self._renewer = None
        if not self.held or self._guard is None:
            return False
        self.held = False
        return self._guard._release(self)

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
        from .errors import GuardError

        while not self._stop_event.wait(self.every):
            try:
                if not self.lease.renew():
                    return
            except GuardError:
                continue  # store out of reach: try again next period, the TTL still runs
