"""Redis clients from URLs: standalone, Sentinel and Cluster, each command bounded by the
SDK's deadlines. (Where the state lives is `guard.store`; this is only how to reach it.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from .errors import UsageError


def connect(url: str, timeout: float, connect_timeout: float | None = None) -> Any:
    """``redis://``, ``rediss://``, ``unix://``; ``redis+sentinel://[:password@]host:port
    [,host:port...]/service_name[/db]`` (the current primary, found through Sentinel);
    ``redis+cluster://host:port`` (Redis Cluster; a namespace lives in one slot).

    A broken pooled connection (e.g. after a Redis restart) is retried once at once on a new
    connection; a timeout is not retried, so a call never takes much more than its deadline.
    Retrying is safe: acquire is idempotent by lease id, release by nature."""
    conn: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout if connect_timeout is not None else timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        "retry_on_error": [redis.ConnectionError],
    }
    client: Any
    if url.startswith("redis+sentinel://"):
        client = _sentinel_master(url, conn)
    elif url.startswith("redis+cluster://"):
        # MOVED/ASK/TRYAGAIN are followed inside RedisCluster; connection errors are
        # retried on a refreshed slot map a few times (each bounded by `timeout`).
        conn.pop("retry_on_error")
        conn["retry"] = Retry(NoBackoff(), 2)
        client = redis.RedisCluster.from_url("redis://" + url.split("://", 1)[1], **conn)
    else:
        client = redis.Redis.from_url(url, **conn)
    return client


def _sentinel_master(url: str, conn: dict[str, Any]) -> redis.Redis[bytes]:
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
        db=int(db.strip("/") or 0),
        username=unquote(user) or None,
        password=unquote(password) or None,
        **conn,
    )
