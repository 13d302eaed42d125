"""The cap on acquires that wait (``wait_seconds`` > 0), per namespace and worker process.

Under ``guard serve``'s gevent workers a waiting acquire is a greenlet parked on its own
Redis subscription, not a thread: it costs a socket and a Redis connection, and nothing
else waits behind it. The cap bounds those per namespace (``GUARD_MAX_WAITERS`` per worker
process; a server holds at most workers x cap per namespace). An acquire beyond the cap does
not wait: it gets a slot if one is free now, else 429 at once with ``Retry-After``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..settings import DEFAULT_MAX_WAITERS

__all__ = ["DEFAULT_MAX_WAITERS", "Waiters"]


class Waiters:
    """How many acquires wait in each namespace in this process."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()

    def waiting(self, ns: str) -> int:
        return self._count.get(ns, 0)

    @contextmanager
    def slot(self, ns: str) -> Iterator[bool]:
        """Yields True (and counts the caller as waiting until the block ends) when `ns` has
        fewer than `cap` waiters; False, counting nothing, when it is full."""
        with self._lock:
            n = self._count.get(ns, 0)
            admitted = n < self.cap
            if admitted:
                self._count[ns] = n + 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    left = self._count[ns] - 1
                    if left:
                        self._count[ns] = left
                    else:
                        del self._count[ns]
