"""Redis clients from URLs: standalone, Sentinel and Cluster, each command bounded by the
SDK's deadlines. (Where the state lives is `guard.store`; this is only how to reach it.)

Every client draws its connections from a *blocking* pool of `max_connections`: a caller
that finds every connection busy waits for one to come free, within its own call's deadline,
instead of failing at once (redis-py's default pool raises "Too many connections", which an
SDK that fails open would turn into unguarded runs exactly when load is highest). A wait that
runs out raises `PoolWaitExpired`, which `guard.store` reports as `guard.PoolExhausted`."""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from .errors import UsageError

DEFAULT_MAX_CONNECTIONS = 32  # per process (per Cluster node); see docs/sdk.md "Connections"
MAX_CONNECTIONS_BOUND = 10_000
# A pool wait is local queueing, not a slow store: with hundreds of threads on one GIL a
# connection can stay busy far longer than a Redis round trip, so the wait gets at least this.
MIN_POOL_TIMEOUT = 1.0


def pool_timeout(timeout: float, pool_timeout: float | None) -> float:
    """How long a call may wait for a pooled connection: `pool_timeout` when given (0 to
    300 s), else the round-trip `timeout` but at least `MIN_POOL_TIMEOUT`."""
    if pool_timeout is None:
        return max(timeout, MIN_POOL_TIMEOUT)
    if (
        isinstance(pool_timeout, bool)
        or not isinstance(pool_timeout, int | float)
        or not (0 < pool_timeout <= 300)
    ):
        raise UsageError(
            f"pool_timeout must be seconds in (0, 300] (got {pool_timeout!r})", "pool_timeout"
        )
    return float(pool_timeout)


# redis-py >= 5.1 has MaxConnectionsError ("client-side exhaustion, not a node failure"):
# RedisCluster then neither retries nor refreshes its slot map. Older versions: plain.
_Exhausted: type[redis.ConnectionError] = getattr(
    redis.exceptions, "MaxConnectionsError", redis.ConnectionError
)


class PoolWaitExpired(_Exhausted):  # type: ignore[misc,valid-type]
    """No pooled connection came free within the call's deadline. Nothing was sent."""

    def __init__(self, max_connections: int, waited: float) -> None:
        super().__init__(
            f"all {max_connections} pooled connections busy for {waited * 1000:.0f} ms "
            "(local saturation: more callers in flight than max_connections)"
        )
        self.max_connections = max_connections


_call = threading.local()  # the deadline of the calling thread's current call, if longer


@contextmanager
def call_deadline(deadline: float) -> Iterator[None]:
    """Within the block, this thread's pool waits may last until `deadline` (monotonic
    seconds) rather than the pool's own `timeout`: a waiting acquire's budget is its wait."""
    outer = getattr(_call, "deadline", None)
    _call.deadline = deadline
    try:
        yield
    finally:
        _call.deadline = outer


class _Waiter:
    __slots__ = ("done", "event", "item")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.done = False
        self.item: Any = None


class _WaitQueue(queue.LifoQueue):  # type: ignore[type-arg]
    """The blocking pool's queue, first come first served: a connection given back goes
    straight to the longest-waiting caller (Python's queue lets a running thread barge
    ahead, and with hundreds of threads some waited a whole second). A wait honours the
    call's deadline and, when it runs out, raises `PoolWaitExpired` (redis-py would raise a
    plain ConnectionError, the same class as an unreachable server)."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self._waiters: collections.deque[_Waiter] = collections.deque()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self.mutex:
            if self._qsize() and not self._waiters:
                return self._get()
            w = _Waiter()
            self._waiters.append(w)
        deadline = getattr(_call, "deadline", None)
        if deadline is not None:
            timeout = max(timeout or 0.0, deadline - time.monotonic())
        w.event.wait(timeout)
        with self.mutex:
            if w.done:  # handed over (perhaps just as the wait ran out)
                return w.item
            self._waiters.remove(w)
        raise PoolWaitExpired(self.maxsize, timeout or 0.0)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self.mutex:
            if self._waiters:
                w = self._waiters.popleft()
                w.item, w.done = item, True
                w.event.set()
            elif 0 < self.maxsize <= self._qsize():
                raise queue.Full  # how redis-py's reset() knows the pool is filled
            else:
                self._put(item)


class _SentinelBlockingPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The current primary through Sentinel, from a blocking pool (redis-py has none)."""


def check_max_connections(value: Any) -> int:
    """1 to 10,000 (an int, or its digits from the environment)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_CONNECTIONS_BOUND
    ):
        raise UsageError(
            f"max_connections must be an integer from 1 to {MAX_CONNECTIONS_BOUND} (got {value!r})",
            "max_connections",
        )
    return value


def connect(
    url: str,
    timeout: float,
    connect_timeout: float | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_wait: float | None = None,
) -> Any:
    """``redis://``, ``rediss://``, ``unix://``; ``redis+sentinel://[:password@]host:port
    [,host:port...]/service_name[/db]`` (the current primary, found through Sentinel);
    ``redis+cluster://host:port`` (Redis Cluster; a namespace lives in one slot).

    A broken pooled connection (e.g. after a Redis restart) is retried once at once on a new
    connection; a timeout is not retried, so a call never takes much more than its deadline.
    Retrying is safe: acquire is idempotent by lease id, release by nature. A caller waits
    for a free connection up to `pool_wait` (default: `pool_timeout(timeout, None)`), or
    its call's deadline when that is longer (`call_deadline`)."""
    max_connections = check_max_connections(max_connections)
    conn: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout if connect_timeout is not None else timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        "retry_on_error": [redis.ConnectionError],
    }
    pool: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": pool_timeout(timeout, pool_wait),
        "queue_class": _WaitQueue,
    }
    client: Any
    if url.startswith("redis+sentinel://"):
        client = _sentinel_master(url, conn, pool)
    elif url.startswith("redis+cluster://"):
        # MOVED/ASK/TRYAGAIN are followed inside RedisCluster; connection errors are
        # retried on a refreshed slot map a few times (each bounded by `timeout`). Each
        # node gets its own blocking pool of max_connections.
        conn.pop("retry_on_error")
        conn["retry"] = Retry(NoBackoff(), 2)
        client = redis.RedisCluster.from_url(
            "redis://" + url.split("://", 1)[1],
            connection_pool_class=redis.BlockingConnectionPool,
            **pool,
            **conn,
        )
    else:
        blocking: Any = redis.BlockingConnectionPool.from_url(url, **pool, **conn)
        client = redis.Redis(connection_pool=blocking)
        client.auto_close_connection_pool = True  # close() disconnects the pool too
    return client


def _sentinel_master(url: str, conn: dict[str, Any], pool: dict[str, Any]) -> redis.Redis[bytes]:
    """``redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]`` -> a
    client of the service's current primary. The password is the primary's; sentinels are
    asked with the same timeouts (each discovery tries the sentinels in turn)."""
    rest = url.split("://", 1)[1]
    auth, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    service, _, db = path.partition("/")
    if not hosts or not service:
        raise UsageError(
            f"sentinel URL must be redis+sentinel://host:port[,host:port]/service[/db]: {url!r}",
            "url",
        )
    nodes = []
    for h in hosts.split(","):
        host, _, port = h.rpartition(":")
        nodes.append((host or "localhost", int(port or 26379)))
    user, _, password = auth.partition(":")
    sentinel = Sentinel(
        nodes,
        socket_timeout=conn["socket_timeout"],
        socket_connect_timeout=conn["socket_connect_timeout"],
    )
    return sentinel.master_for(
        service,
        connection_pool_class=_SentinelBlockingPool,
        db=int(db.strip("/") or 0),
        username=unquote(user) or None,
        password=unquote(password) or None,
        **pool,
        **conn,
    )
