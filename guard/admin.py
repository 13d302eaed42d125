"""Admin operations on one namespace's settings — the same in Python as over HTTP.

Each write reads the whole config with its version, builds and validates the new config in
Python (`guard.model`), compiles the admission plans and writes the difference with one
compare-and-set script. A rejected write therefore changes nothing, and two concurrent
writers cannot interleave: the loser re-reads and re-validates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import keys, wire
from . import overrides as ov
from .errors import ConflictError, NotFound, UsageError
from .model import (
    Config,
    Function,
    Group,
    check_burst,
    check_limit,
    check_name,
    check_namespace,
    check_rate,
)
from .wire import LeaseInfo

if TYPE_CHECKING:
    from .store import RedisStore

CAS_ATTEMPTS = 20
# cfg fields that are not settings: the version, and the fence floor the acquire script keeps
# there (so that fences never go back while the config exists); admin writes never drop them.
RUNTIME_FIELDS = (wire.VERSION, wire.FENCE_FLOOR, wire.PROTOCOL_FIELD)


def default_actor() -> str:
    """Who a direct Redis write is recorded as in the audit log: ``redis:<user>@<host>``."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    return f"redis:{user}@{socket.gethostname()}"


class Admin:
    """`guard.admin_api.AdminAPI` on a `RedisStore`. `actor` is what the audit log records
    for this admin's writes (the HTTP API passes the token's name; the default is
    `default_actor`)."""

    def __init__(self, store: RedisStore, namespace: str, actor: str | None = None) -> None:
        self.store = store
        self.namespace = check_namespace(namespace)
        self.actor = actor or default_actor()

    def for_namespace(self, namespace: str) -> Admin:
        return Admin(self.store, namespace, self.actor)

    # -- reads --------------------------------------------------------------------------

    def config(self) -> Config:
        return Config.from_fields(self.store.read_config(self.namespace))

    def get_namespace(self) -> dict[str, Any]:
        return {"name": self.namespace, **self.config().ns_doc()}

    def list_namespaces(self) -> list[str]:
        return self.store.namespaces()

    def get_group(self, name: str) -> dict[str, Any] | None:
        g = self.config().groups.get(check_name(name))
        return g.doc(name) if g else None

    def get_function(self, name: str) -> dict[str, Any] | None:
        f = self.config().functions.get(check_name(name))
        return f.doc(name) if f else None

    def list_groups(self) -> list[dict[str, Any]]:
        cfg = self.config()
        return [cfg.groups[n].doc(n) for n in sorted(cfg.groups)]

    def list_functions(self) -> list[dict[str, Any]]:
        cfg = self.config()
        return [cfg.functions[n].doc(n) for n in sorted(cfg.functions)]

    def usage(self) -> dict[str, Any]:
        """Live in-use against limits at every level; functions holding leases appear even
        when they were never configured. Expired leases are reaped first. A level under an
        active override carries it in ``override`` (``max_concurrency`` stays the setting)."""
        fields = self.store.read_config(self.namespace)
        cfg = Config.from_fields(fields)
        now = self.store.server_time_ms()
        active = ov.active(fields, now)
        used = self.store.usage_fields(self.namespace, counter_fields(cfg, active))
        return usage_of(cfg, used, active, now)

    def key_usage(self, kind: str, name: str, top: int = 10) -> dict[str, Any]:
        """The `top` keys (1..1000) by in use at a function or a group (`kind` "function" or
        "group"), with each key's cap there; expired leases are reaped first. The keys are
        found by a bounded scan of the use hash (`RedisStore.scan_use`): ``complete`` is
        false when it stopped before the end. A group that does not exist is `NotFound`."""
        return key_usage_of(self.store, self.namespace, kind, name, top)

    def overrides(self) -> list[dict[str, Any]]:
        """The overrides in force now (server time), with the seconds each has left."""
        now = self.store.server_time_ms()
        return [o.doc(now) for o in ov.active(self.store.read_config(self.namespace), now)]

    def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` (1..1000) audit entries of the namespace, newest first."""
        n = ov.check_audit_limit(limit)
        return [ov.entry_doc(i, f) for i, f in self.store.audit_entries(self.namespace, n)]

    def leases(self, function: str | None = None) -> list[LeaseInfo]:
        if function is not None:
            check_name(function, "function")
        return self.store.leases(self.namespace, function)

    def release_lease(self, lease_id: bytes) -> bool:
        return self.store.release(self.namespace, lease_id)

    def close(self) -> None:
        self.store.close()

    # -- writes -------------------------------------------------------------------------

    def _write(
        self, change: Callable[[Config], Config], action: str, target: str = "namespace"
    ) -> Config:
        """One settings write; the override fields (guard.overrides) are left as they are."""
        for _ in range(CAS_ATTEMPTS):
            fields = self.store.read_config(self.namespace)
            old = Config.from_fields(fields)
            new = change(old)
            new.check()
            want = new.to_fields()
            # the overrides in force ride at the end of the namespace plan (guard.overrides)
            stored = ov.from_fields(fields).values()
            want[wire.NS_PLAN] = ov.with_overrides(want[wire.NS_PLAN], stored)
            stale = [
                k
                for k in fields
                if k not in RUNTIME_FIELDS and k not in want and not ov.is_override_field(k)
            ]
            if self._cas(fields, want, stale, action, target):
                return new
        raise ConflictError("too many concurrent writes to this namespace; try again")

    def _cas(
        self,
        fields: dict[str, str | bytes],
        want: dict[str, str | bytes],
        stale: list[str],
        action: str,
        target: str,
    ) -> bool:
        """Write the difference with its audit entry (none when nothing changed)."""
        diff = {k: v for k, v in want.items() if fields.get(k) != v}
        if fields and _text(fields.get(wire.PROTOCOL_FIELD, "1")) != str(wire.PROTOCOL_VERSION):
            diff = dict(want)  # written by another protocol: every plan is compiled anew
        after = {**{k: v for k, v in fields.items() if k not in stale}, **diff}
        before_doc, after_doc = ov.changes(fields, after)
        entry = ov.entry_fields(self.actor, action, target, before_doc, after_doc)
        version = _text(fields.get(wire.VERSION, "0"))
        audit = entry if (before_doc or after_doc) else ()
        return self.store.write_config(self.namespace, version, diff, stale, audit)

    def set_namespace(
        self,
        *,
        max_concurrency: int | None,
        rate_per_second: float | None = None,
        rate_burst: int | None = None,
    ) -> dict[str, Any]:
        """Replace the account-level settings (the HTTP PUT): the account max and the
        account rate (GCRA; None: no rate)."""
        check_limit(max_concurrency, "max_concurrency")
        rate = check_rate(rate_per_second, "rate_per_second")
        burst = check_burst(rate_burst, "rate_burst", rate, "rate_per_second")
        self._write(
            lambda c: replace(
                c, max_concurrency=max_concurrency, rate_per_second=rate, rate_burst=burst
            ),
            "set_namespace",
        )
        return self.get_namespace()

    # -- temporary overrides --------------------------------------------------------------

    def override_function(
        self, name: str, *, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]:
        """Cap (or pause, with 0) a function for `seconds` (<= 7 days), whatever its settings
        say; re-applying a limits file keeps it. It ends at its deadline by server time."""
        return self.override("function", name, max_concurrency, seconds, reason)

    def override_group(
        self, name: str, *, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]:
        """Like `override_function`, for a group's max_concurrency (its reserve stays)."""
        return self.override("group", name, max_concurrency, seconds, reason)

    def clear_override(self, kind: str, name: str) -> bool:
        """End an override now; False when none was in force."""
        ov.check_kind(kind)
        check_name(name, kind)
        found = False

        def change(cur: dict[tuple[str, str], ov.Override], now: int) -> None:
            nonlocal found
            o = cur.pop((kind, name), None)
            found = o is not None and o.active(now)

        self._write_overrides(change, "clear_override", f"{kind}:{name}")
        return found

    def override(
        self, kind: str, name: str, max_concurrency: int, seconds: float, reason: str = ""
    ) -> dict[str, Any]:
        """`override_function` / `override_group` by kind ("function" or "group")."""
        now0 = self.store.server_time_ms()
        ov.make(kind, name, max_concurrency, seconds, reason, self.actor, now0)  # errors first
        made: ov.Override | None = None

        def change(cur: dict[tuple[str, str], ov.Override], now: int) -> None:
            nonlocal made
            made = ov.make(kind, name, max_concurrency, seconds, reason, self.actor, now)
            cur[(kind, name)] = made
            if len(cur) > ov.MAX_OVERRIDES:
                raise ConflictError(
                    f"at most {ov.MAX_OVERRIDES} overrides may be in force in a namespace",
                    "override",
                )

        now = self._write_overrides(change, "override", f"{kind}:{name}")
        assert made is not None
        return made.doc(now)

    def _write_overrides(
        self,
        change: Callable[[dict[tuple[str, str], ov.Override], int], None],
        action: str,
        target: str,
    ) -> int:
        for _ in range(CAS_ATTEMPTS):
            fields = self.store.read_config(self.namespace)
            now = self.store.server_time_ms()
            cur = {k: o for k, o in ov.from_fields(fields).items() if o.active(now)}
            change(cur, now)
            want = ov.to_fields(cur)
            plan = Config.from_fields(fields).plans()[wire.NS_PLAN]
            want[wire.NS_PLAN] = ov.with_overrides(plan, cur.values())
            stale = [k for k in fields if ov.is_override_field(k) and k not in want]
            if self._cas(fields, want, stale, action, target):
                return now
        raise ConflictError("too many concurrent writes to this namespace; try again")

    def put_group(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create or replace a group (fields not given take their defaults)."""
        check_name(name, "group")
        g = Group.build(**fields)
        self._write(
            lambda c: replace(c, groups={**c.groups, name: g}), "put_group", f"group:{name}"
        )
        return g.doc(name)

    def patch_group(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change only the given fields of an existing group (NotFound otherwise)."""
        check_name(name, "group")
        Group.build(**fields)  # field errors before any read
        return self._patch("groups", name, lambda old: Group.build(old, **fields))

    def delete_group(self, name: str) -> bool:
        """Remove a group; False when there was none."""
        return self._delete("groups", check_name(name, "group"))

    def put_function(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create or replace a function's settings (fields not given take their defaults)."""
        check_name(name, "function")
        f = Function.build(**fields)
        self._write(
            lambda c: replace(c, functions={**c.functions, name: f}),
            "put_function",
            f"function:{name}",
        )
        return f.doc(name)

    def patch_function(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change only the given fields of a configured function (NotFound otherwise)."""
        check_name(name, "function")
        Function.build(**fields)
        return self._patch("functions", name, lambda old: Function.build(old, **fields))

    def delete_function(self, name: str) -> bool:
        """Remove a function's settings; False when there were none."""
        return self._delete("functions", check_name(name, "function"))

    def _patch(self, kind: str, name: str, build: Callable[[Any], Any]) -> dict[str, Any]:
        def change(c: Config) -> Config:
            items = getattr(c, kind)
            if name not in items:
                what = kind[:-1]
                raise NotFound(f"no {what} {name!r} in namespace {self.namespace!r}", what)
            changes: dict[str, Any] = {kind: {**items, name: build(items[name])}}
            return replace(c, **changes)

        what = kind[:-1]
        new = self._write(change, f"patch_{what}", f"{what}:{name}")
        doc: dict[str, Any] = getattr(new, kind)[name].doc(name)
        return doc

    def _delete(self, kind: str, name: str) -> bool:
        found = False

        def change(c: Config) -> Config:
            nonlocal found
            items = getattr(c, kind)
            found = name in items
            changes: dict[str, Any] = {kind: {k: v for k, v in items.items() if k != name}}
            return replace(c, **changes)

        self._write(change, f"delete_{kind[:-1]}", f"{kind[:-1]}:{name}")
        return found

    def replace_config(self, cfg: Config) -> Config:
        """Make the namespace hold exactly `cfg` (used by ``guard apply``); overrides in
        force stay (they are not settings)."""
        cfg.check()
        return self._write(lambda _old: cfg, "replace_config")


def apply_config(store: RedisStore, namespace: str, cfg: Config, actor: str) -> Config:
    """What ``guard serve --config`` does: `Admin.replace_config`, recorded in the audit log
    as action ``apply`` by `actor`."""
    cfg.check()
    return Admin(store, namespace, actor)._write(lambda _old: cfg, "apply")


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


def counter_fields(cfg: Config, overrides: list[ov.Override]) -> list[str]:
    """The counters usage reads: the config's, and those of overridden functions it lacks."""
    out = cfg.counter_fields()
    for o in overrides:
        if o.kind == "function" and o.name not in cfg.functions:
            out += [wire.IN_USE + o.name, f"{wire.THROTTLES}{o.name}{wire.SCOPE_SEP}function"]
    return out


def usage_of(
    cfg: Config,
    used: dict[str, str],
    overrides: list[ov.Override] | None = None,
    now_ms: int = 0,
) -> dict[str, Any]:
    """The usage document from a config and the namespace's counters (`usage_fields`), for
    callers that need both and should read each once (the metrics collector). `overrides`
    in force (`guard.overrides.active`) show on their level as ``override``."""

    def n(field: str) -> int:
        return wire.counter(used, field)

    functions: dict[str, dict[str, Any]] = {
        name: {"in_use": n(wire.IN_USE + name), "max_concurrency": f.max_concurrency}
        for name, f in cfg.functions.items()
    }
    for k in used:
        if k.startswith(wire.IN_USE) and k[len(wire.IN_USE) :] not in functions and n(k) > 0:
            functions[k[len(wire.IN_USE) :]] = {"in_use": n(k), "max_concurrency": None}
    groups: dict[str, dict[str, Any]] = {
        name: {
            "in_use": n(wire.GROUP_IN_USE + name),
            "max_concurrency": g.max_concurrency,
            "reserved": g.reserved,
        }
        for name, g in sorted(cfg.groups.items())
    }
    for o in overrides or ():
        level = (functions if o.kind == "function" else groups).get(o.name)
        if level is None and o.kind == "function":
            level = {"in_use": n(wire.IN_USE + o.name), "max_concurrency": None}
            functions[o.name] = level
        if level is not None:
            level["override"] = o.doc(now_ms)
    return {
        "account": {"in_use": n(wire.ACCOUNT), "max_concurrency": cfg.max_concurrency},
        "groups": groups,
        "functions": dict(sorted(functions.items())),
    }


def check_top(value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or not 1 <= value <= keys.MAX_TOP_KEYS:
        raise UsageError(f"top must be an integer from 1 to {keys.MAX_TOP_KEYS}", "top")
    return int(value)


def key_usage_of(store: RedisStore, ns: str, kind: str, name: str, top: int) -> dict[str, Any]:
    """`Admin.key_usage` (docs/http.md "Per-key usage")."""
    ov.check_kind(kind)
    check_name(name, kind)
    n = check_top(top)
    cfg = Config.from_fields(store.read_config(ns))
    level: Function | Group | None
    if kind == "group":
        level = cfg.groups.get(name)
        if level is None:
            raise NotFound(f"no group {name!r} in namespace {ns!r}", "group")
        total_field, prefix = wire.GROUP_IN_USE + name, wire.GROUP_KEY_IN_USE
    else:
        level = cfg.functions.get(name)
        total_field, prefix = wire.IN_USE + name, wire.KEY_IN_USE
    used = store.usage_fields(ns, [total_field])  # reaps expired leases first
    found, complete = store.scan_use(ns, prefix + name + wire.KEY_SEP)
    cut = len(prefix + name + wire.KEY_SEP)
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {
        "kind": kind,
        "name": name,
        "in_use": wire.counter(used, total_field),
        "max_concurrency": level.max_concurrency if level else None,
        "key_max_concurrency": level.key_max_concurrency if level else None,
        "keys_in_use": len(found),
        "complete": complete,
        "keys": [
            {
                "key": f[cut:],
                "in_use": c,
                "max_concurrency": level.key_cap(f[cut:]) if level else None,
            }
            for f, c in ranked
        ],
    }
