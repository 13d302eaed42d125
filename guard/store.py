"""Where state lives: the Redis connection, the Lua scripts and their replies.

The scripts ship as package data (``guard/lua``); ``common.lua`` is prepended to each lease
script. Each is registered once per client and run with EVALSHA; after a Redis restart or
failover (NOSCRIPT) redis-py's `Script` loads it again transparently. Every driver error is
wrapped into a `GuardError` here, so no raw redis-py error leaves the SDK."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from . import keys
from .errors import ConflictError, GuardError, GuardUnavailable, StoreError, UsageError

LEASE_SCRIPTS = ("acquire_lease", "release_lease", "renew_lease", "read_usage")


LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")


def _source(name: str) -> str:
    # A plain file read: importlib.resources would cost milliseconds of import per cold start.
    with open(os.path.join(LUA_DIR, f"{name}.lua"), encoding="utf-8") as f:
        return f.read()


@dataclass(frozen=True, slots=True)
class Grant:
    fence: int
    expires_ms: int
    ttl_ms: int
    groups: tuple[str, ...]
    on_unavailable: str
    shadow_scope: str


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: str
    retry_after_ms: int
    on_unavailable: str


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    lease_id: str
    function: str
    groups: tuple[str, ...]
    expires_ms: int
    granted_ms: int
    fence: int
    ttl_ms: int

    META = struct.Struct(">ddiiB")  # common.lua META, without the trailing strings

    @classmethod
    def unpack(cls, raw_id: bytes, meta: bytes) -> LeaseInfo:
        expires, granted, fence, ttl, n = cls.META.unpack_from(meta)
        head = cls.META.size
        fn = meta[head : head + n].decode()
        groups = tuple(g for g in meta[head + n :].decode().split(",") if g)
        return cls(raw_id.hex(), fn, groups, int(expires), int(granted), fence, ttl)

    def doc(self) -> dict[str, Any]:
        """The lease as the HTTP API and the CLI show it (seconds, server time)."""
        return {
            "lease_id": self.lease_id,
            "function": self.function,
            "groups": list(self.groups),
            "expires_at": self.expires_ms / 1000,
            "fence": self.fence,
            "ttl_seconds": self.ttl_ms / 1000,
            "granted_at": self.granted_ms / 1000,
        }


@dataclass(frozen=True, slots=True)
class Renewal:
    expires_ms: int
    ttl_ms: int


class ReleaseWaiter:
    """Blocks until a release (or config write) is published in the namespace."""

    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub

    def wait(self, timeout: float) -> bool:
        """True when woken by a publish, False when `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            with wrap_errors("wait"):
                if self._pubsub.get_message(timeout=left) is not None:
                    return True
        return False


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def translate(what: str, exc: redis.RedisError) -> GuardError:
    """The GuardError for a redis-py error (the SDK's only error family)."""
    if isinstance(exc, redis.ResponseError):
        msg = str(exc)
        if msg.startswith("CONFLICT"):
            return ConflictError(msg.removeprefix("CONFLICT "))
        return StoreError(f"{what}: store error: {msg}")
    return GuardUnavailable(f"{what}: store unreachable: {exc}")


@contextmanager
def wrap_errors(what: str) -> Iterator[None]:
    """Turn every redis-py error raised in the block into a GuardError."""
    try:
        yield
    except redis.RedisError as exc:
        raise translate(what, exc) from exc


class RedisStore:
    """Lease and config operations of one Redis (or Sentinel/Cluster) client."""

    def __init__(self, client: redis.Redis[bytes], *, quarantine: bool = False) -> None:
        self.client = client
        self.quarantine = quarantine
        self._keys: dict[str, list[str]] = {}
        common = (
            f"local DEFAULT_TTL_MS, BACKSTOP_MS = {int(keys.DEFAULT_LEASE_TTL * 1000)}, "
            f"{int(keys.BACKSTOP_TTL * 1000)}\n" + _source("struct_compat") + _source("common")
        )
        self._scripts = {n: client.register_script(common + _source(n)) for n in LEASE_SCRIPTS}
        self._write_config = client.register_script(_source("write_config"))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 0.05,
        connect_timeout: float | None = None,
        quarantine: bool = False,
    ) -> RedisStore:
        """A client whose every command is bounded by `timeout` (read) and `connect_timeout`.

        ``redis://``, ``rediss://``, ``unix://``; ``redis+sentinel://[:password@]host:port
        [,host:port...]/service_name[/db]`` (the current primary, found through Sentinel);
        ``redis+cluster://host:port`` (Redis Cluster; a namespace lives in one slot).

        A broken pooled connection (e.g. after a Redis restart) is retried once at once on a
        new connection; a timeout is not retried, so a call never takes much more than its
        deadline. Retrying is safe: acquire is idempotent by lease id, release by nature.
        `quarantine` turns on the failover quarantine (docs/guarantees.md)."""
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
        return cls(client, quarantine=quarantine)

    # -- leases -------------------------------------------------------------------------

    def _run(self, name: str, ns: str, args: Sequence[Any]) -> Any:
        # The hot path: a plain try (no context manager) and the namespace's keys cached.
        ks = self._keys.get(ns)
        if ks is None:
            ks = self._keys[ns] = keys.lease_keys(ns)
        try:
            return self._scripts[name](keys=ks, args=args)
        except redis.RedisError as exc:
            raise translate(name, exc) from exc

    def acquire(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait_ms: int = 0,
        pending: Mapping[str, int] | None = None,
    ) -> Grant | Refusal:
        args: tuple[Any, ...] = (function, lease_id, ttl_ms)
        if wait_ms or pending or self.quarantine:  # optional trailing arguments
            pend = ",".join(f"{f}={n}" for f, n in pending.items()) if pending else ""
            args = (function, lease_id, ttl_ms, wait_ms, pend, "1" if self.quarantine else "")
        r = self._run("acquire_lease", ns, args)
        if int(r[0]) > 0:
            groups = tuple(g for g in _s(r[3]).split(",") if g)
            return Grant(int(r[0]), int(r[1]), int(r[2]), groups, _s(r[4]), _s(r[5]))
        return Refusal(_s(r[1]), int(r[2]), _s(r[3]))

    def renew(self, ns: str, lease_id: bytes, ttl_ms: int = 0) -> Renewal | None:
        r = self._run("renew_lease", ns, (lease_id, ttl_ms))
        return Renewal(int(r[1]), int(r[2])) if r[0] == 1 else None

    def release(self, ns: str, lease_id: bytes) -> bool:
        return bool(self._run("release_lease", ns, (lease_id,)) == 1)

    @contextmanager
    def release_waiter(self, ns: str) -> Iterator[ReleaseWaiter]:
        """Subscribe to the namespace's release channel for the duration of a wait."""
        with wrap_errors("wait"):
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(keys.release_channel(ns))
        try:
            yield ReleaseWaiter(pubsub)
        finally:
            with suppress(redis.RedisError):  # closing a dead connection
                pubsub.close()

    def usage_fields(self, ns: str) -> dict[str, str]:
        """Reap expired leases, then every counter of the namespace (field -> value)."""
        flat = self._run("read_usage", ns, ())
        return {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2) if flat[i]}

    def leases(self, ns: str, function: str | None = None) -> list[LeaseInfo]:
        """Held (unexpired, unreleased) leases of the namespace, optionally of one function.
        An admin view: it reads the whole lease hash (O(held leases))."""
        with wrap_errors("leases"):
            raw = self.client.hgetall(keys.lease_keys(ns)[3])
            now = self.client.time()
        now_ms = now[0] * 1000 + now[1] // 1000
        out = []
        for k, v in raw.items():
            if len(k) != 16:  # the sentinel
                continue
            info = LeaseInfo.unpack(k, v)
            if info.expires_ms > now_ms and function in (None, info.function):
                out.append(info)
        return sorted(out, key=lambda i: i.fence)

    # -- config -------------------------------------------------------------------------

    def read_config(self, ns: str) -> dict[str, str | bytes]:
        """The cfg hash: settings documents as text, compiled plans (``p:…``) as bytes."""
        with wrap_errors("read config"):
            raw = self.client.hgetall(keys.config_key(ns))
        out: dict[str, str | bytes] = {}
        for k, v in raw.items():
            name = _s(k)
            out[name] = v if name.startswith("p:") else _s(v)
        return out

    def write_config(
        self,
        ns: str,
        version: str,
        set_fields: Mapping[str, str | bytes],
        del_fields: Sequence[str],
    ) -> bool:
        """Compare-and-set write; False when someone else wrote since `version` was read."""
        args: list[str | bytes] = [version, keys.release_channel(ns), str(len(set_fields))]
        for k, v in set_fields.items():
            args += [k, v]
        args += list(del_fields)
        with wrap_errors("write config"):
            r = self._write_config(keys=[keys.config_key(ns)], args=args)
            if int(r) < 0:
                return False
            self.client.sadd(keys.NAMESPACES, ns)
        return True

    def namespaces(self) -> list[str]:
        with wrap_errors("namespaces"):
            return sorted(_s(n) for n in self.client.smembers(keys.NAMESPACES))

    # -- epoch and reset detection --------------------------------------------------------

    def epoch(self, ns: str | None = None) -> str:
        """The identity of the server process that serves `ns` (its ``run_id``).

        It changes whenever another process starts answering: a restart (with or without
        persistence), a Sentinel failover, a Cluster failover or slot move. A change is
        the cue to ask whether state was lost: `config_version` tells whether the
        namespace's settings survived (the quarantine in acquire_lease.lua uses the same
        run_id, read inside the script). On Cluster, `ns` picks the node owning its slot."""
        with wrap_errors("epoch"):
            if isinstance(self.client, redis.RedisCluster):
                node = self.client.get_node_from_key(keys.config_key(ns or "default"))
                info = self.client.info("server", target_nodes=node)
            else:
                info = self.client.info("server")
        return str(info["run_id"])

    def config_version(self, ns: str) -> str | None:
        """The version of the namespace's stored settings; None when it has none.

        Store-reset detection for ``guard serve --config``: a namespace that the config
        file defines but whose version is None was reset (e.g. Redis restarted empty) and
        must be re-applied before it admits anything without limits. Cheap (one HGET);
        poll it, or check it whenever `epoch` changes."""
        with wrap_errors("config version"):
            v = self.client.hget(keys.config_key(ns), keys.VERSION)
        return None if v is None else _s(v)

    def admin(self, namespace: str) -> Any:
        from .admin import Admin

        return Admin(self, namespace)

    def ping(self) -> bool:
        with wrap_errors("ping"):
            return bool(self.client.ping())

    def close(self) -> None:
        self.client.close()


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
