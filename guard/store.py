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

import redis

from . import keys
from .connect import connect
from .errors import ConflictError, GuardError, GuardUnavailable, StoreError, StoreReset

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
        self._configured: set[str] = set()  # namespaces seen with a config (reset detection)
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
        """A store whose every command is bounded by `timeout` (read) and `connect_timeout`;
        the URL forms are those of `guard.connect.connect`. `quarantine` turns on the
        failover quarantine (docs/guarantees.md)."""
        return cls(connect(url, timeout, connect_timeout), quarantine=quarantine)

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
        granted = int(r[0]) > 0
        if not r[-1]:  # the namespace has no config (version) at all
            self._check_reset(ns, lease_id if granted else None)
        elif ns not in self._configured:
            self._configured.add(ns)
        if granted:
            groups = tuple(g for g in _s(r[3]).split(",") if g)
            return Grant(int(r[0]), int(r[1]), int(r[2]), groups, _s(r[4]), _s(r[5]))
        return Refusal(_s(r[1]), int(r[2]), _s(r[3]))

    def acquire_waiting(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait: float,
        pending: Mapping[str, int] | None = None,
    ) -> Grant | Refusal:
        """`acquire`, waiting up to `wait` seconds for a slot. It subscribes to the release
        channel first and then retries, so no release is missed; each sleep ends at the
        next release or config write, or after the refusal's retry_after at most."""
        deadline = time.monotonic() + wait
        r = self.acquire(ns, function, lease_id, ttl_ms, int(wait * 1000), pending)
        if isinstance(r, Grant) or wait <= 0:
            return r
        with self.release_waiter(ns) as waiter:
            while (left := deadline - time.monotonic()) > 0:
                r = self.acquire(ns, function, lease_id, ttl_ms, int(left * 1000))
                if isinstance(r, Grant):
                    return r
                waiter.wait(min(left, max(r.retry_after_ms / 1000, 0.001)))
        return self.acquire(ns, function, lease_id, ttl_ms, 0)

    def _check_reset(self, ns: str, lease_id: bytes | None) -> None:
        """A namespace this client saw configured has no config now: the store was reset
        (restarted empty, flushed, failed over to an empty replica). Its limits are gone until
        someone re-applies them (``guard serve --config`` does), so rather than run silently
        without limits this is reported as unavailable: ``on_unavailable`` decides, and
        fail-open runs are counted. A lease the empty store just granted is given back."""
        if ns not in self._configured:
            return  # never configured as far as this client knows: no limits is the setting
        if lease_id is not None:
            with suppress(GuardError):
                self.release(ns, lease_id)
        raise StoreReset(f"namespace {ns!r} lost its configuration (store reset?)")

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
        audit: Sequence[str] = (),
    ) -> bool:
        """Compare-and-set write; False when someone else wrote since `version` was read.
        `audit` (field/value pairs, `guard.overrides.entry_fields`) is appended to the
        namespace's capped audit stream in the same atomic step."""
        from .overrides import AUDIT_MAX_ENTRIES, audit_key

        cap = AUDIT_MAX_ENTRIES if audit else 0
        args: list[str | bytes] = [
            version,
            keys.release_channel(ns),
            str(cap),
            str(len(audit) // 2),
        ]
        args += list(audit)
        args.append(str(len(set_fields)))
        for k, v in set_fields.items():
            args += [k, v]
        args += list(del_fields)
        with wrap_errors("write config"):
            r = self._write_config(keys=[keys.config_key(ns), audit_key(ns)], args=args)
            if int(r) < 0:
                return False
            self.client.sadd(keys.NAMESPACES, ns)
        return True

    def server_time_ms(self) -> int:
        """The store's clock (ms): overrides expire by it, inside the admission script."""
        with wrap_errors("time"):
            t = self.client.time()
        return int(t[0]) * 1000 + int(t[1]) // 1000

    def audit_entries(self, ns: str, limit: int) -> list[tuple[str, dict[str, str]]]:
        """The newest `limit` audit entries of the namespace, newest first."""
        from .overrides import audit_key

        with wrap_errors("audit"):
            raw = self.client.xrevrange(audit_key(ns), count=limit)
        return [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in raw]

    def namespaces(self) -> list[str]:
        with wrap_errors("namespaces"):
            return sorted(_s(n) for n in self.client.smembers(keys.NAMESPACES))

    def reset_namespaces(self) -> list[str]:
        """Namespaces whose settings are gone: the store was reset (restarted empty, flushed,
        failed over to an empty replica) and acquires there answer `StoreReset`. What
        ``/readyz`` reports. The namespaces listed in ``guard:namespaces`` are checked; when
        that list is gone too (a whole-store reset), the namespaces this client saw
        configured. A namespace taken off the list on purpose is not a reset."""
        names = sorted(set(self.namespaces()) or self._configured)
        if not names:
            return []
        with wrap_errors("config version"):
            pipe = self.client.pipeline(transaction=False)
            for ns in names:
                pipe.hexists(keys.config_key(ns), keys.VERSION)
            found = pipe.execute()
        return [ns for ns, ok in zip(names, found, strict=True) if not ok]

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
