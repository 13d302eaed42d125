"""The SDK's HTTP mode: leases over guard's HTTP API, for functions that cannot reach Redis.

Standard library only (`http.client`). Kept-alive connections are shared by every thread
of the process through a bounded pool (`max_connections`): a caller beyond it waits for a
free connection within its call's deadline, and a wait that runs out is a
`guard.PoolExhausted` (a local saturation, counted and logged once). HTTP answers map to the same
results and errors as the Redis mode: 201 → `Grant`, 429 → `Refusal`, 400 → `UsageError`,
404 → `NotFound`, 409 → `ConflictError`; a connection failure, a timeout or a 5xx is a
`GuardUnavailable`, so ``on_unavailable`` works identically. 401/403 are configuration
mistakes (a bad ``GUARD_TOKEN``), raised as `UsageError` rather than failing open."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from .config_file import config_from_doc, config_to_doc
from .connect import DEFAULT_MAX_CONNECTIONS, check_max_connections
from .connect import pool_timeout as check_pool_timeout
from .errors import (
    ConflictError,
    GuardError,
    GuardUnavailable,
    NotFound,
    PoolExhausted,
    StoreReset,
    UsageError,
)
from .wire import Grant, LeaseInfo, Refusal, Renewal, is_rate_scope

# The server's bounds on a lease request (guard.server.schemas: MAX_WAIT_SECONDS,
# MAX_WAIT_MORE_SECONDS; not imported: that module needs pydantic)
REQUEST_WAIT = 30.0  # s a request waits at most; a longer wait is several requests
MAX_WAIT_MORE = 3600.0

if TYPE_CHECKING:
    from .model import Config

Reply = tuple[int, Any]
log = logging.getLogger("guard")


class HttpBackend:
    """`guard.client.Backend` over HTTP. `timeout` bounds each round trip (plus any wait);
    at most `max_connections` connections are open at once, and a caller waits up to
    `pool_timeout` (default: `timeout`, at least 1 s) or its call's deadline for one."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 2.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: float | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"not an http(s) URL: {url!r}", "url")
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_connections = check_max_connections(max_connections)
        self.pool_timeout = check_pool_timeout(timeout, pool_timeout)
        self.pool_exhausted = 0
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    # -- transport ----------------------------------------------------------------------

    def _checkout(self, budget: float) -> http.client.HTTPConnection:
        """A connection of the pool, waiting up to `budget` s for one to come free."""
        if not self._slots.acquire(timeout=budget):
            with self._lock:
                self.pool_exhausted += 1
                first = self.pool_exhausted == 1
            err = PoolExhausted(
                f"guard service at {self.url}: all {self.max_connections} connections busy "
                f"for {budget * 1000:.0f} ms (local saturation: more callers in flight "
                "than max_connections)"
            )
            if first:
                log.warning(
                    "guard: %s. Raise max_connections (GUARD_MAX_CONNECTIONS) or "
                    "pool_timeout. Counted in Guard.pool_exhausted; logged once per client.",
                    err,
                )
            raise err
        with self._lock:
            if self._idle:
                return self._idle.pop()
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def _checkin(self, conn: http.client.HTTPConnection, keep: bool) -> None:
        if keep:
            with self._lock:
                self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    def request(
        self, method: str, path: str, body: Any = None, *, extra_timeout: float = 0.0
    ) -> Reply:
        """One round trip; (status, parsed JSON or None). Transport errors → GuardUnavailable
        (`in_doubt` when the request went out and no answer came in time).

        A kept-alive connection the server closed meanwhile is retried once on a new one
        (safe: acquire is idempotent by lease id, renew and release by nature)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = self.timeout + extra_timeout
        conn = self._checkout(max(deadline, self.pool_timeout))
        keep = False
        try:
            for attempt in (0, 1):
                reused = conn.sock is not None
                try:
                    conn.timeout = deadline
                    if conn.sock is not None:
                        conn.sock.settimeout(deadline)
                    conn.request(method, self.base + path, body=data, headers=headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    if reused and attempt == 0 and not isinstance(exc, TimeoutError):
                        continue  # closed by the server while idle: once more, new socket
                    raise GuardUnavailable(
                        f"guard service unreachable at {self.url}: {exc}",
                        in_doubt=isinstance(exc, TimeoutError),
                    ) from exc
                keep = not resp.will_close
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                return resp.status, parsed
            raise AssertionError("unreachable")
        finally:
            self._checkin(conn, keep)

    def call(self, method: str, path: str, body: Any = None, *, extra_timeout: float = 0.0) -> Any:
        """A round trip whose non-2xx answers raise the matching GuardError."""
        status, doc = self.request(method, path, body, extra_timeout=extra_timeout)
        if status < 300:
            return doc
        raise error_for(status, doc)

    # -- Backend ------------------------------------------------------------------------

    def acquire(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait_ms: int = 0,
        pending: Mapping[str, int] | None = None,
        *,
        key: str | None = None,
        more: float = 0.0,
    ) -> Grant | Refusal:
        """One lease request. `more` (s): the caller waits that much longer after this
        request with the same lease id (``wait_more_seconds``: the server keeps its ticket)."""
        wait = min(wait_ms / 1000, REQUEST_WAIT)
        body: dict[str, Any] = {"function": function, "lease_id": lease_id.hex()}
        if key is not None:
            body["key"] = key
        if ttl_ms:
            body["ttl_seconds"] = ttl_ms / 1000
        if wait > 0:
            body["wait_seconds"] = wait
            if more > 0:
                body["wait_more_seconds"] = round(min(more, MAX_WAIT_MORE), 3)
        if pending:
            body["unavailable"] = dict(pending)
        status, doc = self.request(
            "POST", f"/v1/namespaces/{q(ns)}/leases", body, extra_timeout=wait
        )
        if status == 201:
            return Grant.from_doc(doc)
        if status == 429 and isinstance(doc, dict):
            return Refusal.from_doc(doc)
        raise error_for(status, doc)

    def acquire_waiting(
        self,
        ns: str,
        function: str,
        lease_id: bytes,
        ttl_ms: int,
        wait: float,
        pending: Mapping[str, int] | None = None,
        *,
        key: str | None = None,
    ) -> Grant | Refusal:
        """The server waits (woken by releases, at most `REQUEST_WAIT` s a request); longer
        waits loop with the same lease id, each request saying how much longer the caller
        waits after it (``wait_more_seconds``), so the ticket keeps its place in the queue."""
        deadline = time.monotonic() + wait
        more = max(wait - REQUEST_WAIT, 0.0)
        r = self.acquire(
            ns, function, lease_id, ttl_ms, int(wait * 1000), pending, key=key, more=more
        )
        while isinstance(r, Refusal) and (left := deadline - time.monotonic()) > 0:
            if is_rate_scope(r.scope) and r.retry_after_ms / 1000 > left:
                break  # the server gave up early: no token comes within this wait
            more = max(left - REQUEST_WAIT, 0.0)
            r = self.acquire(ns, function, lease_id, ttl_ms, int(left * 1000), key=key, more=more)
        return r

    def renew(self, ns: str, lease_id: bytes, ttl_ms: int = 0) -> Renewal | None:
        body = {"ttl_seconds": ttl_ms / 1000} if ttl_ms else {}
        path = f"/v1/namespaces/{q(ns)}/leases/{lease_id.hex()}/renew"
        status, doc = self.request("POST", path, body)
        if status == 200:
            return Renewal.from_doc(doc)
        if status == 404:
            return None
        raise error_for(status, doc)

    def release(self, ns: str, lease_id: bytes) -> bool:
        status, doc = self.request("DELETE", f"/v1/namespaces/{q(ns)}/leases/{lease_id.hex()}")
        if status in (200, 204):
            return True
        if status == 404:
            return False
        raise error_for(status, doc)

    def admin(self, namespace: str) -> HttpAdmin:
        """`guard.admin_api.AdminAPI` over this client's connections."""
        return HttpAdmin(self, namespace)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def q(segment: str) -> str:
    return quote(segment, safe="")


def error_for(status: int, doc: Any) -> GuardError:
    detail = doc.get("detail", "") if isinstance(doc, dict) else ""
    field = doc.get("field") if isinstance(doc, dict) else None
    msg = f"HTTP {status}: {detail}".rstrip(": ")
    if status in (401, 403):
        return UsageError(f"{msg} (check GUARD_TOKEN)", "token")
    if status == 404:
        return NotFound(msg, field)
    if status == 409:
        return ConflictError(msg, field)
    if 400 <= status < 500:
        return UsageError(msg, field)
    if isinstance(doc, dict) and str(doc.get("type", "")).endswith("store-reset"):
        return StoreReset(msg)
    return GuardUnavailable(msg)


class HttpAdmin:
    """`guard.admin_api.AdminAPI` over the HTTP API (what the CLI uses with GUARD_URL)."""

    def __init__(self, backend: HttpBackend, namespace: str) -> None:
        self.backend = backend
        self.namespace = namespace
        self._p = f"/v1/namespaces/{q(namespace)}"

    def for_namespace(self, namespace: str) -> HttpAdmin:
        return HttpAdmin(self.backend, namespace)

    def list_namespaces(self) -> list[str]:
        return list(self.backend.call("GET", "/v1/namespaces")["namespaces"])

    def get_namespace(self) -> dict[str, Any]:
        return dict(self.backend.call("GET", self._p))

    def set_namespace(
        self,
        *,
        max_concurrency: int | None,
        rate_per_second: float | None = None,
        rate_burst: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"max_concurrency": max_concurrency}
        if rate_per_second is not None or rate_burst is not None:
            body.update(rate_per_second=rate_per_second, rate_burst=rate_burst)
        return dict(self.backend.call("PUT", self._p, body))

    def usage(self) -> dict[str, Any]:
        return dict(self.backend.call("GET", f"{self._p}/usage"))

    def key_usage(self, kind: str, name: str, top: int = 10) -> dict[str, Any]:
        from .overrides import check_kind

        path = f"{self._p}/{check_kind(kind)}s/{q(name)}/keys?top={int(top)}"
        return dict(self.backend.call("GET", path))

    def leases(self, function: str | None = None) -> list[LeaseInfo]:
        query = "?" + urlencode({"function": function}) if function else ""
        docs = self.backend.call("GET", f"{self._p}/leases{query}")["leases"]
        return [LeaseInfo.from_doc(d) for d in docs]

    def release_lease(self, lease_id: bytes) -> bool:
        return self.backend.release(self.namespace, lease_id)

    def close(self) -> None:
        self.backend.close()

    def _list(self, kind: str) -> list[dict[str, Any]]:
        return list(self.backend.call("GET", f"{self._p}/{kind}")[kind])

    def _get(self, kind: str, name: str) -> dict[str, Any] | None:
        status, doc = self.backend.request("GET", f"{self._p}/{kind}/{q(name)}")
        if status == 404:
            return None
        if status >= 300:
            raise error_for(status, doc)
        return dict(doc)

    def _write(self, method: str, kind: str, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        return dict(self.backend.call(method, f"{self._p}/{kind}/{q(name)}", fields))

    def _delete(self, kind: str, name: str) -> bool:
        status, doc = self.backend.request("DELETE", f"{self._p}/{kind}/{q(name)}")
        if status == 404:
            return False
        if status >= 300:
            raise error_for(status, doc)
        return True

    def list_groups(self) -> list[dict[str, Any]]:
        return self._list("groups")

    def get_group(self, name: str) -> dict[str, Any] | None:
        return self._get("groups", name)

    def put_group(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._write("PUT", "groups", name, fields)

    def patch_group(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._write("PATCH", "groups", name, fields)

    def delete_group(self, name: str) -> bool:
        return self._delete("groups", name)

    def list_functions(self) -> list[dict[str, Any]]:
        return self._list("functions")

    def get_function(self, name: str) -> dict[str, Any] | None:
        return self._get("functions", name)

    def put_function(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._write("PUT", "functions", name, fields)

    def patch_function(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._write("PATCH", "functions", name, fields)

    def delete_function(self, name: str) -> bool:
        return self._delete("functions", name)

    def config(self) -> Config:
        """The namespace's whole settings (``GET …/config``)."""
        return config_from_doc(self.backend.call("GET", f"{self._p}/config"))

    def replace_config(self, cfg: Config) -> Config:
        """Replace the whole settings atomically (``PUT …/config``)."""
        doc = self.backend.call("PUT", f"{self._p}/config", config_to_doc(cfg))
        return config_from_doc(doc)

    # -- temporary overrides and the audit log ---------------------------------------------

    def override(
        self, kind: str, name: str, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]:
        body = {"max_concurrency": max_concurrency, "seconds": seconds, "reason": reason}
        return dict(self.backend.call("PUT", self._override_path(kind, name), body))

    def override_function(
        self, name: str, *, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]:
        return self.override("function", name, max_concurrency, seconds, reason)

    def override_group(
        self, name: str, *, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]:
        return self.override("group", name, max_concurrency, seconds, reason)

    def clear_override(self, kind: str, name: str) -> bool:
        status, doc = self.backend.request("DELETE", self._override_path(kind, name))
        if status == 404:
            return False
        if status >= 300:
            raise error_for(status, doc)
        return True

    def _override_path(self, kind: str, name: str) -> str:
        from .overrides import check_kind

        return f"{self._p}/{check_kind(kind)}s/{q(name)}/override"

    def overrides(self) -> list[dict[str, Any]]:
        return list(self.backend.call("GET", f"{self._p}/overrides")["overrides"])

    def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(self.backend.call("GET", f"{self._p}/audit?limit={int(limit)}")["entries"])
