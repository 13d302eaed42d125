"""Admin operations on one namespace's settings — the same in Python as over HTTP.

Each write reads the whole config with its version, builds and validates the new config in
Python (`guard.model`), compiles the admission plans and writes the difference with one
compare-and-set script. A rejected write therefore changes nothing, and two concurrent
writers cannot interleave: the loser re-reads and re-validates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import wire
from .errors import ConflictError, NotFound
from .model import Config, Function, Group, check_limit, check_name, check_namespace
from .wire import LeaseInfo

if TYPE_CHECKING:
    from .store import RedisStore

CAS_ATTEMPTS = 20
# cfg fields that are not settings: the version, and the fence floor the acquire script keeps
# there (so that fences never go back while the config exists); admin writes never drop them.
RUNTIME_FIELDS = (wire.VERSION, wire.FENCE_FLOOR)


class Admin:
    """`guard.admin_api.AdminAPI` on a `RedisStore`."""

    def __init__(self, store: RedisStore, namespace: str) -> None:
        self.store = store
        self.namespace = check_namespace(namespace)

    def for_namespace(self, namespace: str) -> Admin:
        return Admin(self.store, namespace)

    # -- reads --------------------------------------------------------------------------

    def config(self) -> Config:
        return Config.from_fields(self.store.read_config(self.namespace))

    def get_namespace(self) -> dict[str, Any]:
        return {"name": self.namespace, "max_concurrency": self.config().max_concurrency}

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
        when they were never configured. Expired leases are reaped first."""
        cfg = self.config()
        return usage_of(cfg, self.store.usage_fields(self.namespace, cfg.counter_fields()))

    def leases(self, function: str | None = None) -> list[LeaseInfo]:
        if function is not None:
            check_name(function, "function")
        return self.store.leases(self.namespace, function)

    def release_lease(self, lease_id: bytes) -> bool:
        return self.store.release(self.namespace, lease_id)

    def close(self) -> None:
        self.store.close()

    # -- writes -------------------------------------------------------------------------

    def _write(self, change: Callable[[Config], Config]) -> Config:
        for _ in range(CAS_ATTEMPTS):
            fields = self.store.read_config(self.namespace)
            old = Config.from_fields(fields)
            new = change(old)
            new.check()
            want = new.to_fields()
            stale = [k for k in fields if k not in RUNTIME_FIELDS and k not in want]
            diff = {k: v for k, v in want.items() if fields.get(k) != v}
            version = _text(fields.get(wire.VERSION, "0"))
            if self.store.write_config(self.namespace, version, diff, stale):
                return new
        raise ConflictError("too many concurrent writes to this namespace; try again")

    def set_namespace(self, *, max_concurrency: int | None) -> dict[str, Any]:
        check_limit(max_concurrency, "max_concurrency")
        self._write(lambda c: replace(c, max_concurrency=max_concurrency))
        return self.get_namespace()

    def put_group(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create or replace a group (fields not given take their defaults)."""
        check_name(name, "group")
        g = Group.build(**fields)
        self._write(lambda c: replace(c, groups={**c.groups, name: g}))
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
        self._write(lambda c: replace(c, functions={**c.functions, name: f}))
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

        doc: dict[str, Any] = getattr(self._write(change), kind)[name].doc(name)
        return doc

    def _delete(self, kind: str, name: str) -> bool:
        found = False

        def change(c: Config) -> Config:
            nonlocal found
            items = getattr(c, kind)
            found = name in items
            changes: dict[str, Any] = {kind: {k: v for k, v in items.items() if k != name}}
            return replace(c, **changes)

        self._write(change)
        return found

    def replace_config(self, cfg: Config) -> Config:
        """Make the namespace hold exactly `cfg` (used by ``guard apply``)."""
        cfg.check()
        return self._write(lambda _old: cfg)


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


def usage_of(cfg: Config, used: dict[str, str]) -> dict[str, Any]:
    """The usage document from a config and the namespace's counters (`usage_fields`), for
    callers that need both and should read each once (the metrics collector)."""

    def n(field: str) -> int:
        return wire.counter(used, field)

    functions = {
        name: {"in_use": n(wire.IN_USE + name), "max_concurrency": f.max_concurrency}
        for name, f in cfg.functions.items()
    }
    for k in used:
        if k.startswith(wire.IN_USE) and k[len(wire.IN_USE) :] not in functions and n(k) > 0:
            functions[k[len(wire.IN_USE) :]] = {"in_use": n(k), "max_concurrency": None}
    return {
        "account": {"in_use": n(wire.ACCOUNT), "max_concurrency": cfg.max_concurrency},
        "groups": {
            name: {
                "in_use": n(wire.GROUP_IN_USE + name),
                "max_concurrency": g.max_concurrency,
                "reserved": g.reserved,
            }
            for name, g in sorted(cfg.groups.items())
        },
        "functions": dict(sorted(functions.items())),
    }
