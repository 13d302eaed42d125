"""Where state lives: the Redis connection and the Lua scripts — I/O only.

What each script is sent and what its reply means is `guard.wire` (I/O-free); this module
runs the scripts with those arguments and hands the decoded replies on. The scripts ship as
package data (``guard/lua``); ``common.lua`` is prepended to each lease script. Each is
registered once per client and run with EVALSHA; after a Redis restart or failover
(NOSCRIPT) redis-py's `Script` loads it again transparently. Every driver error is wrapped
into a `GuardError` here, so no raw redis-py error leaves the SDK."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Any

import redis

from . import keys, scripts, wire
from .connect import DEFAULT_MAX_CONNECTIONS, PoolWaitExpired, call_deadline, connect
from .errors import (
    ConflictError,
    GuardError,
    GuardUnavailable,
    NamespaceNotFound,
    PoolExhausted,
    ProtocolMismatch,
    StoreError,
    StoreReset,
    UsageError,
)
from .model import check_name
from .wire import Grant, LeaseInfo, Refusal, Renewal

if TYPE_CHECKING:
    from .admin_api import AdminAPI

log = logging.getLogger("guard")


class _Waiter:
    """One waiting acquire: woken by a release naming its ticket (its lease id), by a plain
    release of its function, or of any function when none of its own is waiting, or by a
    config write."""

    __slots__ = ("event", "function", "lease_id", "listener")

    def __init__(self, listener: ReleaseListener, function: str, lease_id: bytes) -> None:
        self.listener = listener
        self.function = function
        self.lease_id = lease_id
        self.event = threading.Event()

    @property
    def subscribed(self) -> bool:
        return self.listener.subscribed

    def wait(self, timeout: float) -> bool:
        """True when woken by a publish, False when `timeout` passed first."""
        woke = self.event.wait(timeout)
        self.event.clear()  # a wake lost here is harmless: the caller retries next anyway
        return woke


class _Sleeper:
    subscribed = False

    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False


class _Channel:
    __slots__ = ("by_id", "ready", "waiters")

    def __init__(self) -> None:
        self.ready = threading.Event()  # the subscription is confirmed by Redis
        self.waiters: dict[str, list[_Waiter]] = {}
        self.by_id: dict[bytes, _Waiter] = {}  # lease id (ticket) -> its waiter


class ReleaseListener:
    """One subscriber connection per client for every thread that waits for a slot.

    A waiter holds no connection while it sleeps (a subscription per waiter would take one
    pooled connection each, and with more waiters than connections nobody could release).
    A release message ``<fn>|<lease ids>`` names the oldest live tickets of the function
    whose lease was released and of its groups' queues, as many as each has free slots
    (first come, first served): only the listener holding such a waiter wakes it, whatever
    function it waits for, so a release wakes as many waiters as there
    are free slots across every process, not every waiter. A message naming only
    the function (it has no queue) wakes one waiter of that function, or every waiter of the
    namespace when none of that function waits; a config write (``*``) wakes them all.
    Subscriptions stay once made (releases publish only while someone waits, so an idle one
    costs nothing). When the listener cannot subscribe or its connection breaks, waiters
    still wake after the refusal's ``retry_after``: it is a shortcut, never a condition of
    progress."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._sub_lock = threading.Lock()
        self._channels: dict[bytes, _Channel] = {}
        self._pubsub: Any = None
        self._closed = False

    @contextmanager
    def waiting(
        self, ns: str, function: str, budget: float, lease_id: bytes = b""
    ) -> Iterator[_Waiter]:
        """Register a waiter on `ns`; the subscription is confirmed (within `budget` s)
        before this returns, so a release published after it is never missed."""
        ch = keys.release_channel(ns).encode()
        w = _Waiter(self, function, lease_id)
        with self._lock:
            state = self._channels.get(ch)
            if state is None:
                state = self._channels[ch] = _Channel()
            state.waiters.setdefault(function, []).append(w)
            if lease_id:
                state.by_id[lease_id] = w
            subscribe = not state.ready.is_set()
        try:
            if subscribe and self._subscribe(ch):
                state.ready.wait(budget)
            yield w
        finally:
            with self._lock:
                ws = state.waiters.get(function, [])
                if w in ws:
                    ws.remove(w)
                if not ws:
                    state.waiters.pop(function, None)
                if state.by_id.get(lease_id) is w:
                    del state.by_id[lease_id]

    @property
    def subscribed(self) -> bool:
        return self._pubsub is not None

    def _subscribe(self, ch: bytes) -> bool:
        """Subscribe to `ch` (once); False when the listener cannot (waiters then poll)."""
        # Its own lock: a subscribe may wait for a pooled connection, and meanwhile the
        # listener must still dispatch and other waiters register. The pool wait is the
        # client's plain pool timeout, not the waiting call's whole budget.
        with self._sub_lock, call_deadline(time.monotonic()):
            if self._closed:
                return False
            try:
                if self._pubsub is None:
                    pubsub = self._client.pubsub()
                    pubsub.subscribe(ch)
                    self._pubsub = pubsub
                    threading.Thread(
                        target=self._listen, args=(pubsub,), name="guard-releases", daemon=True
                    ).start()
                elif ch not in self._pubsub.channels:
                    self._pubsub.subscribe(ch)
                return True
            except redis.RedisError as exc:
                log.debug("release listener cannot subscribe (%s); waiters poll", exc)
                with self._lock:
                    self._drop()
                return False

    def _listen(self, pubsub: Any) -> None:
        while not self._closed:
            try:
                msg = pubsub.get_message(timeout=1.0)
            except Exception as exc:  # a broken or closed connection: this thread ends
                with self._lock:
                    if self._pubsub is pubsub:
                        log.debug("release listener lost its connection (%s)", exc)
                        self._drop()
                return
            if msg is not None:
                self._dispatch(msg)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        with self._lock:
            state = self._channels.get(msg["channel"])
            if state is None:
                return
            if msg["type"] == "subscribe":
                state.ready.set()
                return
            if msg["type"] != "message":
                return
            data = msg["data"] if isinstance(msg["data"], bytes) else str(msg["data"]).encode()
            fn, bar, ticket = data.partition(b"|")
            if bar:  # tickets are named (16-byte ids): their owners, of any function (a
                # group's queue holds waiters of its member functions)
                for i in range(0, len(ticket), 16):
                    named = state.by_id.get(ticket[i : i + 16])
                    if named is not None:
                        named.event.set()
                return
            same = state.waiters.get(fn.decode(errors="replace"), ())
            for w in same:
                if not w.event.is_set():
                    w.event.set()
                    return
            for ws in state.waiters.values():
                for w in ws:
                    w.event.set()

    def _drop(self) -> None:
        """Forget the subscriber (lock held): waiters are woken to retry, the next waiter
        subscribes again."""
        pubsub, self._pubsub = self._pubsub, None
        for state in self._channels.values():
            state.ready.clear()
            for ws in state.waiters.values():
                for w in ws:
                    w.event.set()
        if pubsub is not None:
            with suppress(Exception):  # closing a dead connection
                pubsub.close()

    def close(self) -> None:
        self._closed = True
        with self._sub_lock, self._lock:
            self._drop()


def _check_pending(pending: Mapping[str, int]) -> None:
    """The fail-open count map is client input (over HTTP too): bounded and checked before
    `wire.acquire_args` encodes it."""
    if len(pending) > keys.MAX_PENDING_NAMES:
        raise UsageError(
            f"unavailable holds at most {keys.MAX_PENDING_NAMES} function names "
            f"(got {len(pending)})",
            "unavailable",
        )
    for f, n in pending.items():
        check_name(f, "unavailable")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
            raise UsageError(f"unavailable counts must be 1..1000000 (got {n!r})", "unavailable")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def translate(what: str, exc: redis.RedisError, source: scripts.Source | None = None) -> GuardError:
    """The GuardError for a redis-py error (the SDK's only error family). With the `source`
    of the script that failed, a Lua error names the file and line it happened at."""
    if isinstance(exc, PoolWaitExpired):
        return PoolExhausted(f"{what}: {exc}")
    if isinstance(exc, redis.ResponseError):
        msg = str(exc)
        if msg.startswith("CONFLICT"):
            return ConflictError(msg.removeprefix("CONFLICT "))
        if msg.startswith("PROTOCOL"):
            return ProtocolMismatch(f"{what}: {msg.removeprefix('PROTOCOL ')}")
        if source is not None:
            msg = source.where(msg)
        return StoreError(f"{what}: store error: {msg}")
    # A read that timed out was sent: the store may have acted on it.
    in_doubt = isinstance(exc, redis.TimeoutError)
    return GuardUnavailable(f"{what}: store unreachable: {exc}", in_doubt=in_doubt)


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
        self.pool_exhausted = 0  # pool waits that ran out (PoolExhausted raised)
        self._exhausted_lock = threading.Lock()
        pool_size = getattr(getattr(client, "connection_pool", None), "max_connections", 2)
        # The listener takes one pooled connection; a pool of one is left to the callers.
        self.listener = ReleaseListener(client) if pool_size >= 2 else None
        self._keys: dict[str, list[str]] = {}
        self._configured: set[str] = set()  # namespaces seen with a config (reset detection)
        self._sources = {n: scripts.lease_script(n) for n in scripts.LEASE_SCRIPTS}
        self._scripts = {n: client.register_script(src.text) for n, src in self._sources.items()}
        self._write_config_source = scripts.write_config_script()
        self._write_config = client.register_script(self._write_config_source.text)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 0.05,
        connect_timeout: float | None = None,
        quarantine: bool = False,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: float | None = None,
    ) -> RedisStore:
        """A store whose every command is bounded by `timeout` (read) and `connect_timeout`;
        the URL forms are those of `guard.connect.connect`. `quarantine` turns on the
        failover quarantine (docs/guarantees.md). At most `max_connections` connections
        (per Cluster node); callers beyond them wait for one up to `pool_timeout` (default:
        `timeout`, at least 1 s) or their waiting acquire's deadline."""
        client = connect(url, timeout, connect_timeout, max_connections, pool_timeout)
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
            err = translate(name, exc, self._sources[name])
            if isinstance(err, PoolExhausted):
                self._count_exhausted(err)
            raise err from exc

    def _count_exhausted(self, err: PoolExhausted) -> None:
        with self._exhausted_lock:
            self.pool_exhausted += 1
            first = self.pool_exhausted == 1
        if first:
            log.warning(
                "guard: %s. Callers waited their whole deadline for a Redis connection; "
                "raise max_connections (GUARD_MAX_CONNECTIONS) or pool_timeout. Counted in "
                "Guard.pool_exhausted; logged once per client.",
                err,
            )

    def acquire(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait_ms: int = 0,
        pending: Mapping[str, int] | None = None,
        *,
        require_config: bool = False,
        last: bool = False,
        key: str | None = None,
    ) -> Grant | Refusal:
        """One admission. `key`: the acquire's key (ARGV[9]; per-key limits, key rate).
        `wait_ms` > 0: a refusal queues a ticket under `lease_id` (first
        come, first served; docs/sdk.md "Waiting"). `pending`: fail-open runs to add to the
        counters (at most ``keys.MAX_PENDING_NAMES`` names; recorded with a grant or a
        refusal alike). `require_config`: raise `NamespaceNotFound`, writing nothing, when
        the namespace has no configuration (the HTTP API; the SDK on Redis runs without
        one). `last`: the last attempt of a wait that ran out (a refusal drops the ticket
        and counts a timed-out wait)."""
        if pending:
            _check_pending(pending)
        args = wire.acquire_args(
            function, lease_id, ttl_ms, wait_ms, pending, self.quarantine, require_config, last, key
        )
        r, version = wire.decode_acquire(self._run("acquire_lease", ns, args), lease_id, function)
        if r is None:  # require_config, and there is none: a reset if we saw one
            self._check_reset(ns, None)
            raise NamespaceNotFound(f"namespace {ns!r} has no configuration", "namespace")
        if not version:  # the namespace has no config (version) at all
            self._check_reset(ns, lease_id if isinstance(r, Grant) else None)
        elif ns not in self._configured:
            self._configured.add(ns)
        return r

    def acquire_waiting(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait: float,
        pending: Mapping[str, int] | None = None,
        *,
        require_config: bool = False,
        key: str | None = None,
        more: float = 0.0,
    ) -> Grant | Refusal:
        """`acquire`, waiting up to `wait` seconds for a slot, first come, first served: the
        first refusal queues a ticket under `lease_id`, and freed slots of the function go
        to the oldest live tickets. It subscribes to the release channel first and then
        retries, so no release is missed; each sleep ends at the release that names its
        ticket (or a config write), or after the refusal's retry_after, at most
        ``keys.WAITER_RETRY`` (each retry keeps the ticket alive). `more`: the caller waits
        that much longer after this call with the same `lease_id` (an HTTP wait longer than
        one request): the ticket is kept live for it, and not dropped at the end."""
        if wait <= 0:
            return self.acquire(
                ns, function, lease_id, ttl_ms, 0, pending, require_config=require_config, key=key
            )
        deadline = time.monotonic() + wait
        rc = require_config
        with call_deadline(deadline):  # pool waits may use the whole wait
            r = self.acquire(
                ns, function, lease_id, ttl_ms, int((wait + more) * 1000), pending,
                require_config=rc, key=key,
            )  # fmt: skip
            if isinstance(r, Grant):
                return r
            with self._waiting(ns, function, min(wait, 1.0), lease_id) as waiter:
                while (left := deadline - time.monotonic()) > 0:
                    if wire.is_rate_scope(r.scope) and r.retry_after_ms / 1000 > left + more:
                        break  # no release frees a token: none comes within this wait
                    r = self.acquire(
                        ns, function, lease_id, ttl_ms, int((left + more) * 1000),
                        require_config=rc, key=key,
                    )  # fmt: skip
                    if isinstance(r, Grant):
                        return r
                    # Releases and reap passes wake the waiter; the sleep bound covers a
                    # missed message, so it need not be short while subscribed.
                    floor = 0.05 if waiter.subscribed else 0.001
                    nap = min(max(r.retry_after_ms / 1000, floor), keys.WAITER_RETRY)
                    waiter.wait(min(left, nap))
        if more > 0:  # the caller comes back: a last try that keeps its place
            return self.acquire(
                ns, function, lease_id, ttl_ms, int(more * 1000), require_config=rc, key=key
            )
        return self.acquire(
            ns, function, lease_id, ttl_ms, 0, require_config=rc, last=True, key=key
        )

    def _waiting(self, ns: str, function: str, budget: float, lease_id: bytes) -> Any:
        if self.listener is None:  # a pool of one connection: sleep between retries
            return nullcontext(_Sleeper())
        return self.listener.waiting(ns, function, budget, lease_id)

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
        r = self._run("renew_lease", ns, wire.renew_args(lease_id, ttl_ms))
        return wire.decode_renew(r, lease_id)

    def release(self, ns: str, lease_id: bytes) -> bool:
        return wire.decode_release(self._run("release_lease", ns, wire.release_args(lease_id)))

    def usage_fields(self, ns: str, fields: Sequence[str] = ()) -> dict[str, str]:
        """Reap expired leases, then the namespace's counters (field -> value): `fields`
        (`Config.counter_fields`), the account's, and those of the unconfigured functions
        kept by name and of ``keys.OTHER`` — a bounded read, never the whole hash."""
        return wire.decode_usage(self._run("read_usage", ns, tuple(fields)))

    def scan_use(self, ns: str, prefix: str) -> tuple[dict[str, int], bool]:
        """The use-hash fields starting with `prefix` (``k:<fn>|`` or ``kg:<group>|``: in
        use per key, `guard.wire`), field -> count, and whether the scan was complete. An
        admin read with a bounded cost: HSCAN with MATCH, at most ``keys.SCAN_CALLS`` calls of
        ``keys.SCAN_COUNT`` fields each (the whole use hash is walked: its size is the
        namespace's counters plus one field per key in use now); beyond that it stops and
        says so. Never on the admission path."""
        out: dict[str, int] = {}
        cursor, calls = 0, 0
        match = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        with wrap_errors("scan use"):
            while True:
                cursor, page = self.client.hscan(
                    keys.lease_keys(ns)[1], cursor, match=match, count=keys.SCAN_COUNT
                )
                calls += 1
                for k, v in page.items():
                    n = int(v)
                    if n > 0:
                        out[_s(k)] = n
                if cursor == 0 or calls >= keys.SCAN_CALLS:
                    break
        return out, cursor == 0

    def queued(self, ns: str, functions: Sequence[str]) -> dict[str, int]:
        """Live waiting tickets per function (acquire_lease.lua "Waiting queue"): tickets
        whose deadline is still ahead. `functions` bounds the read (one ZCOUNT each)."""
        with wrap_errors("queued"):
            sec, us = self.client.time()
            now_ms = sec * 1000 + us // 1000
            pipe = self.client.pipeline(transaction=False)
            for fn in functions:
                pipe.zcount(keys.queue_deadline_key(ns, fn), f"({now_ms}", "+inf")
            counts = pipe.execute()
        return {fn: int(n) for fn, n in zip(functions, counts, strict=True)}

    def leases(self, ns: str, function: str | None = None) -> list[LeaseInfo]:
        """Held (unexpired, unreleased) leases of the namespace, optionally of one function.
        An admin view: it reads the whole lease hash (O(held leases))."""
        with wrap_errors("leases"):
            raw = self.client.hgetall(keys.lease_keys(ns)[3])
            now = self.client.time()
        now_ms = now[0] * 1000 + now[1] // 1000
        out = []
        for k, v in raw.items():
            if len(k) != wire.LEASE_ID_BYTES:  # the sentinel
                continue
            info = LeaseInfo.unpack(k, v)
            if info.expires_ms > now_ms and function in (None, info.function):
                out.append(info)
        return sorted(out, key=lambda i: i.fence)

    # -- config -------------------------------------------------------------------------

    def read_config(self, ns: str) -> dict[str, str | bytes]:
        """The cfg hash: settings documents as text, compiled plans (``p:…``) as bytes.
        `ProtocolMismatch` when they were written by a newer protocol than this client's."""
        with wrap_errors("read config"):
            raw = self.client.hgetall(keys.config_key(ns))
        out: dict[str, str | bytes] = {}
        for k, v in raw.items():
            name = _s(k)
            out[name] = v if name.startswith(wire.PLAN_PREFIX) else _s(v)
        pv = out.get(wire.PROTOCOL_FIELD)
        if isinstance(pv, str) and (not pv.isdigit() or int(pv) > wire.PROTOCOL_VERSION):
            raise ProtocolMismatch(
                f"read config: namespace {ns!r} holds protocol {pv} formats; this client "
                f"speaks protocol {wire.PROTOCOL_VERSION}: upgrade it"
            )
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
        args = wire.write_config_args(
            version,
            keys.release_channel(ns),
            set_fields,
            del_fields,
            audit,
            keys.AUDIT_MAX_ENTRIES,
        )
        try:
            r = self._write_config(keys=[keys.config_key(ns), keys.audit_key(ns)], args=args)
            if wire.decode_write_config(r) is None:
                return False
            self.client.sadd(keys.NAMESPACES, ns)
        except redis.RedisError as exc:
            raise translate("write config", exc, self._write_config_source) from exc
        return True

    def server_time_ms(self) -> int:
        """The store's clock (ms): overrides expire by it, inside the admission script."""
        with wrap_errors("time"):
            t = self.client.time()
        return int(t[0]) * 1000 + int(t[1]) // 1000

    def audit_entries(self, ns: str, limit: int) -> list[tuple[str, dict[str, str]]]:
        """The newest `limit` audit entries of the namespace, newest first."""
        with wrap_errors("audit"):
            raw = self.client.xrevrange(keys.audit_key(ns), count=limit)
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
                pipe.hexists(keys.config_key(ns), wire.VERSION)
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
            v = self.client.hget(keys.config_key(ns), wire.VERSION)
        return None if v is None else _s(v)

    def admin(self, namespace: str) -> AdminAPI:
        from .admin import Admin  # the admin imports this module's types only

        return Admin(self, namespace)

    def ping(self) -> bool:
        with wrap_errors("ping"):
            return bool(self.client.ping())

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        self.client.close()
