"""What the settings are and what they mean for admission — pure Python, no I/O.

`Config` is one namespace's settings. Every admin write builds a new `Config`, validates
it as a whole (`check`), and compiles the per-function admission plans the Lua script reads
(`plans`, packed in the formats of `guard.wire`). The rule itself (docs/guarantees.md,
"The admission rule") is enforced in ``lua/acquire_lease.lua``; `admits` below is the same
rule in Python, used by the tests' model."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import keys, wire
from .errors import ConflictError, UsageError

MAX_LIMIT = 10_000_000
MAX_MEMBERS = 10_000
MAX_GROUPS_PER_FUNCTION = 64  # groups one function belongs to (each is checked per acquire)
MAX_RESERVING_GROUPS = 64  # groups with reserved > 0 in a namespace (checked per acquire)
MAX_KEY_OVERRIDES = 1_000  # key_overrides entries of one function or group
MIN_RATE = 0.001  # rate_per_second bounds (grants per second; GCRA, docs/guarantees.md)
MAX_RATE = 1_000_000
MAX_BURST = 1_000_000  # rate_burst bound (grants at once after an idle period)
MODES = ("enforce", "shadow")
ON_UNAVAILABLE = ("open", "closed")


# keys.NAME_RE and keys.NAMESPACE_RE in words (the HTTP API's messages use them too)
NAME_RULE = (
    "must be 1-128 characters of letters, digits, '_', '-', '.', and start with a letter, "
    "digit or '_'"
)
NAMESPACE_RULE = NAME_RULE.replace("1-128", "1-64")


def check_name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not keys.NAME_RE.fullmatch(value):
        raise UsageError(f"{what} {NAME_RULE} (got {value!r})", what)
    return value


def check_namespace(value: Any) -> str:
    if not isinstance(value, str) or not keys.NAMESPACE_RE.fullmatch(value):
        raise UsageError(f"namespace {NAMESPACE_RULE} (got {value!r})", "namespace")
    return value


def check_limit(value: Any, what: str, *, nullable: bool = True) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, float) and value.is_integer():  # 2.0 is an integer, as in JSON Schema
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an integer >= 0 or null" if nullable else "an integer >= 0"
        raise UsageError(f"{what} must be {kind} (got {value!r})", what)
    if not 0 <= value <= MAX_LIMIT:
        raise UsageError(f"{what} must be between 0 and {MAX_LIMIT} (got {value})", what)
    return value


def check_ttl(value: Any, what: str = "lease_ttl_seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{what} must be a number of seconds (got {value!r})", what)
    if not keys.MIN_LEASE_TTL <= value <= keys.MAX_LEASE_TTL:
        raise UsageError(
            f"{what} must be between {keys.MIN_LEASE_TTL:g} and {keys.MAX_LEASE_TTL:g} seconds "
            f"(leases are kept in whole milliseconds; got {value})",
            what,
        )
    return float(value)


def check_key(value: Any, what: str = "key") -> str:
    """A key (per tenant, customer, API key: docs/sdk.md "Keys") follows the name rule."""
    return check_name(value, what)


def default_burst(rate: float) -> int:
    """The burst when only a rate is set: one second's worth (at least 1)."""
    return max(1, math.ceil(rate))


def check_rate(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(
            f"{what} must be a number of grants per second or null (got {value!r})", what
        )
    if not MIN_RATE <= value <= MAX_RATE:
        raise UsageError(
            f"{what} must be between {MIN_RATE:g} and {MAX_RATE} grants per second (got {value})",
            what,
        )
    return float(value) if isinstance(value, float) else value


def check_burst(value: Any, what: str, rate: float | None, rate_field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what} must be an integer >= 1 or null (got {value!r})", what)
    if not 1 <= value <= MAX_BURST:
        raise UsageError(f"{what} must be between 1 and {MAX_BURST} (got {value})", what)
    if rate is None:
        raise UsageError(f"{what} needs {rate_field} (a burst of no rate)", what)
    return value


def check_key_overrides(value: Any, what: str = "key_overrides") -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UsageError(f"{what} must be an object {{key: max}} (got {value!r})", what)
    if len(value) > MAX_KEY_OVERRIDES:
        raise UsageError(f"{what} holds at most {MAX_KEY_OVERRIDES} keys (got {len(value)})", what)
    out: dict[str, int] = {}
    for k in sorted(value, key=str):
        check_key(k, what)
        out[k] = int(check_limit(value[k], what, nullable=False) or 0)
    return out


def rate_plan(rate: float | None, burst: int | None) -> tuple[float, float]:
    """(emission interval, tolerance) in µs for a GCRA level: one grant per interval, and a
    grant is allowed while the level's theoretical arrival time is at most `tolerance` ahead
    of now ((burst - 1) intervals). (0.0, 0.0): no rate at this level."""
    if rate is None:
        return 0.0, 0.0
    t = 1_000_000 / rate
    return t, t * ((burst or default_burst(rate)) - 1)


def _choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{what} must be one of {', '.join(choices)} (got {value!r})", what)
    return str(value)


def _unknown(fields: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for k in fields:
        if k not in allowed:
            raise UsageError(f"unknown field {k!r} (allowed: {', '.join(allowed)})", k)


# Issue 14's fields (keys and rates): a document shows them only when set, so the documents
# (and admin reads) of a config that uses none are what they were before them.
KEY_RATE_FIELDS = frozenset(
    {
        "key_max_concurrency",
        "key_overrides",
        "rate_per_second",
        "rate_burst",
        "key_rate_per_second",
        "key_rate_burst",
    }
)


def _fields_doc(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in names:
        v = getattr(obj, k)
        if k in KEY_RATE_FIELDS and not v and v != 0:  # unset (None or {}): not shown
            continue
        out[k] = dict(v) if isinstance(v, dict) else v
    return out


@dataclass(frozen=True)
class Function:
    max_concurrency: int | None = None
    lease_ttl_seconds: float = keys.DEFAULT_LEASE_TTL
    on_unavailable: str | None = None  # None: the SDK's Guard(on_unavailable=...) default
    mode: str = "enforce"
    key_max_concurrency: int | None = None  # the cap of every key (key= of an acquire)
    key_overrides: dict[str, int] = field(default_factory=dict)  # {key: its own cap}
    rate_per_second: float | None = None  # GCRA on the function's grants
    rate_burst: int | None = None  # None with a rate: default_burst(rate)
    key_rate_per_second: float | None = None  # GCRA per key
    key_rate_burst: int | None = None

    FIELDS = (
        "max_concurrency",
        "lease_ttl_seconds",
        "on_unavailable",
        "mode",
        "key_max_concurrency",
        "key_overrides",
        "rate_per_second",
        "rate_burst",
        "key_rate_per_second",
        "key_rate_burst",
    )

    @classmethod
    def build(cls, base: Function | None = None, **fields: Any) -> Function:
        _unknown(fields, cls.FIELDS)
        f = replace(base or cls(), **fields)
        check_limit(f.max_concurrency, "max_concurrency")
        ttl = check_ttl(f.lease_ttl_seconds)
        if f.on_unavailable is not None:
            _choice(f.on_unavailable, "on_unavailable", ON_UNAVAILABLE)
        _choice(f.mode, "mode", MODES)
        check_limit(f.key_max_concurrency, "key_max_concurrency")
        rate = check_rate(f.rate_per_second, "rate_per_second")
        key_rate = check_rate(f.key_rate_per_second, "key_rate_per_second")
        return replace(
            f,
            lease_ttl_seconds=ttl,
            key_overrides=check_key_overrides(f.key_overrides),
            rate_per_second=rate,
            rate_burst=check_burst(f.rate_burst, "rate_burst", rate, "rate_per_second"),
            key_rate_per_second=key_rate,
            key_rate_burst=check_burst(
                f.key_rate_burst, "key_rate_burst", key_rate, "key_rate_per_second"
            ),
        )

    def doc(self, name: str) -> dict[str, Any]:
        return {"name": name, **_fields_doc(self, self.FIELDS)}

    def key_cap(self, key: str) -> int | None:
        """The cap of `key` here: its override, else key_max_concurrency (None: no cap)."""
        return self.key_overrides.get(key, self.key_max_concurrency)

    @property
    def keyed(self) -> bool:
        """Whether a key is counted at this function (a key cap applies to some key)."""
        return self.key_max_concurrency is not None or bool(self.key_overrides)


def _members(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise UsageError(f"members must be a list of function names (got {value!r})", "members")
    if len(value) > MAX_MEMBERS:
        raise UsageError(f"members holds at most {MAX_MEMBERS} names", "members")
    names = [check_name(v, "members") for v in value]
    if len(set(names)) != len(names):
        raise UsageError("members must not repeat a name", "members")
    return tuple(sorted(names))


def _selector(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"tags"}:
        tags = value["tags"]
        if (
            isinstance(tags, dict)
            and tags
            and all(isinstance(k, str) and k and isinstance(v, str) for k, v in tags.items())
        ):
            return {"tags": dict(sorted(tags.items()))}
    stack = value.get("stack") if isinstance(value, dict) and set(value) == {"stack"} else None
    if isinstance(stack, str) and stack:
        return {"stack": stack}
    raise UsageError(
        'selector must be {"tags": {"key": "value", ...}} or {"stack": "name"} or null '
        f"(got {value!r})",
        "selector",
    )


@dataclass(frozen=True)
class Group:
    max_concurrency: int | None = None
    reserved: int = 0
    members: tuple[str, ...] = ()
    selector: dict[str, Any] | None = None
    mode: str = "enforce"
    key_max_concurrency: int | None = None
    key_overrides: dict[str, int] = field(default_factory=dict)
    rate_per_second: float | None = None
    rate_burst: int | None = None

    FIELDS = (
        "max_concurrency",
        "reserved",
        "members",
        "selector",
        "mode",
        "key_max_concurrency",
        "key_overrides",
        "rate_per_second",
        "rate_burst",
    )

    @classmethod
    def build(cls, base: Group | None = None, **fields: Any) -> Group:
        _unknown(fields, cls.FIELDS)
        g = replace(base or cls(), **fields)
        check_limit(g.max_concurrency, "max_concurrency")
        check_limit(g.reserved, "reserved", nullable=False)
        if g.max_concurrency is not None and g.reserved > g.max_concurrency:
            raise UsageError(
                f"reserved ({g.reserved}) must not exceed max_concurrency ({g.max_concurrency})",
                "reserved",
            )
        _choice(g.mode, "mode", MODES)
        check_limit(g.key_max_concurrency, "key_max_concurrency")
        rate = check_rate(g.rate_per_second, "rate_per_second")
        return replace(
            g,
            members=_members(g.members),
            selector=_selector(g.selector),
            key_overrides=check_key_overrides(g.key_overrides),
            rate_per_second=rate,
            rate_burst=check_burst(g.rate_burst, "rate_burst", rate, "rate_per_second"),
        )

    def doc(self, name: str) -> dict[str, Any]:
        return {"name": name, **_fields_doc(self, self.FIELDS), "members": list(self.members)}

    def key_cap(self, key: str) -> int | None:
        return self.key_overrides.get(key, self.key_max_concurrency)

    @property
    def keyed(self) -> bool:
        return self.key_max_concurrency is not None or bool(self.key_overrides)


@dataclass(frozen=True)
class Config:
    """One namespace's settings."""

    max_concurrency: int | None = None
    groups: dict[str, Group] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    rate_per_second: float | None = None  # account (namespace) GCRA
    rate_burst: int | None = None

    NS_FIELDS = ("max_concurrency", "rate_per_second", "rate_burst")

    def ns_doc(self) -> dict[str, Any]:
        """The namespace-level settings (what admin reads of the namespace return)."""
        return _fields_doc(self, self.NS_FIELDS)

    def check(self) -> None:
        """Whole-config rules that no single field shows (what S2 needs: docs/guarantees.md)."""
        check_limit(self.max_concurrency, "max_concurrency")
        rate = check_rate(self.rate_per_second, "rate_per_second")
        check_burst(self.rate_burst, "rate_burst", rate, "rate_per_second")
        total = sum(g.reserved for g in self.groups.values())
        if self.max_concurrency is not None and total > self.max_concurrency:
            raise ConflictError(
                f"the groups' reserved add up to {total}, above the account max_concurrency "
                f"({self.max_concurrency})",
                "reserved",
            )
        n_reserving = sum(1 for g in self.groups.values() if g.reserved > 0)
        if n_reserving > MAX_RESERVING_GROUPS:
            raise ConflictError(
                f"{n_reserving} groups have reserved > 0; at most {MAX_RESERVING_GROUPS} may",
                "reserved",
            )
        per_function: dict[str, int] = {}
        for g in self.groups.values():
            for m in g.members:
                per_function[m] = per_function.get(m, 0) + 1
        crowded = [m for m, n in per_function.items() if n > MAX_GROUPS_PER_FUNCTION]
        if crowded:
            raise ConflictError(
                f"function {min(crowded)!r} would belong to {per_function[min(crowded)]} groups; "
                f"at most {MAX_GROUPS_PER_FUNCTION}",
                "members",
            )
        reserving: dict[str, str] = {}
        for gname in sorted(self.groups):
            g = self.groups[gname]
            if g.reserved <= 0:
                continue
            for m in g.members:
                if m in reserving:
                    raise ConflictError(
                        f"function {m!r} would belong to two groups with reserved > 0 "
                        f"({reserving[m]!r} and {gname!r})",
                        "members",
                    )
                reserving[m] = gname

    def groups_of(self, function: str) -> list[str]:
        return sorted(n for n, g in self.groups.items() if function in g.members)

    def counter_fields(self) -> list[str]:
        """The use-hash counters this config's functions and groups can have (`guard.wire`
        field names): what usage and metrics read, instead of the whole hash."""
        out = [wire.GROUP_IN_USE + n for n in sorted(self.groups)]
        names = set(self.functions)
        for g in self.groups.values():
            names.update(g.members)
        per_function = (wire.IN_USE, wire.GRANTS, wire.EXPIRED, wire.UNAVAILABLE, wire.TIMED_OUT)
        scoped = (wire.THROTTLES, wire.SHADOW_THROTTLES)
        for fn in sorted(names):
            out += [p + fn for p in per_function]
            scopes = [
                "function",
                "account",
                "quarantine",
                *(wire.SCOPE_GROUP + g for g in self.groups_of(fn)),
                *self._key_rate_scopes(fn),
            ]
            out += [f"{p}{fn}{wire.SCOPE_SEP}{sc}" for p in scoped for sc in scopes]
        return out

    def _key_rate_scopes(self, fn: str) -> list[str]:
        """The key and rate scopes `fn` can be refused (or shadow-refused) with."""
        f = self.functions.get(fn, Function())
        out = [wire.SCOPE_KEY] if f.keyed else []
        if self.rate_per_second is not None:
            out.append(wire.SCOPE_RATE_ACCOUNT)
        for gn in self.groups_of(fn):
            g = self.groups[gn]
            if g.keyed:
                out.append(wire.group_key_scope(gn))
            if g.rate_per_second is not None:
                out.append(wire.rate_group_scope(gn))
        if f.rate_per_second is not None:
            out.append(wire.SCOPE_RATE_FUNCTION)
        if f.key_rate_per_second is not None:
            out.append(wire.SCOPE_RATE_KEY)
        return out

    # -- storage ------------------------------------------------------------------------

    @classmethod
    def from_fields(cls, fields: Mapping[str, str | bytes]) -> Config:
        ns = json.loads(fields.get(wire.NS_DOC, "{}"))  # plans (bytes) are derived: skipped
        groups, functions = {}, {}
        for k, v in fields.items():
            if k.startswith(wire.GROUP_DOC):
                d = json.loads(v)
                d["members"] = tuple(d.get("members", ()))
                groups[k[len(wire.GROUP_DOC) :]] = Group(**d)
            elif k.startswith(wire.FUNCTION_DOC):
                functions[k[len(wire.FUNCTION_DOC) :]] = Function(**json.loads(v))
        return cls(
            ns.get("max_concurrency"),
            groups,
            functions,
            ns.get("rate_per_second"),
            ns.get("rate_burst"),
        )

    def to_fields(self) -> dict[str, str | bytes]:
        """Settings documents plus compiled plans: what the cfg hash must hold."""
        nsd = (
            self.ns_doc()
            if self.rate_per_second is not None
            else {"max_concurrency": self.max_concurrency}
        )
        out: dict[str, str | bytes] = {wire.NS_DOC: json.dumps(nsd)}
        for n, g in self.groups.items():
            d = g.doc(n)
            del d["name"]
            out[wire.GROUP_DOC + n] = json.dumps(d, sort_keys=True)
        for n, f in self.functions.items():
            d = f.doc(n)
            del d["name"]
            out[wire.FUNCTION_DOC + n] = json.dumps(d, sort_keys=True)
        out.update(self.plans())
        return out

    def plans(self) -> dict[str, bytes]:
        """The admission plans read by acquire_lease.lua, packed in `guard.wire`'s formats
        (binary: unpacking costs the script far less than parsing text), and the key caps of
        key_overrides (one field per key: read only by an acquire with that key)."""
        reserving = [(n, g.reserved) for n, g in sorted(self.groups.items()) if g.reserved]
        ns_rate = rate_plan(self.rate_per_second, self.rate_burst)
        out = {wire.NS_PLAN: wire.pack_ns_plan(self.max_concurrency, reserving, ns_rate)}
        names = set(self.functions)
        for g in self.groups.values():
            names.update(g.members)
        for fn in names:
            f = self.functions.get(fn, Function())
            own = self.groups_of(fn)
            groups = [
                (gn, self.groups[gn].max_concurrency, self.groups[gn].mode == "shadow")
                for gn in own
            ]
            keyed = wire.KeyRates(
                f.key_max_concurrency,
                bool(f.key_overrides),
                rate_plan(f.rate_per_second, f.rate_burst),
                rate_plan(f.key_rate_per_second, f.key_rate_burst),
                tuple(
                    (
                        self.groups[gn].key_max_concurrency,
                        bool(self.groups[gn].key_overrides),
                        rate_plan(self.groups[gn].rate_per_second, self.groups[gn].rate_burst),
                    )
                    for gn in own
                ),
            )
            out[wire.FUNCTION_PLAN + fn] = wire.pack_function_plan(
                f.max_concurrency,
                keys.ttl_ms(f.lease_ttl_seconds),
                f.mode == "shadow",
                f.on_unavailable,
                groups,
                keyed,
            )
        for fn, f in self.functions.items():
            for k, cap in f.key_overrides.items():
                out[wire.KEY_CAP_PLAN + fn + wire.KEY_SEP + k] = wire.KEY_CAP.pack(cap)
        for gn, g in self.groups.items():
            for k, cap in g.key_overrides.items():
                out[wire.GROUP_KEY_CAP_PLAN + gn + wire.KEY_SEP + k] = wire.KEY_CAP.pack(cap)
        return out


def admits(
    cfg: Config, function: str, in_use: Mapping[str, int], key: str | None = None
) -> tuple[bool, str | None]:
    """The admission rule's concurrency part in plain Python: (granted, refusing or shadow
    scope). Levels are checked in the script's order: function, the key at the function,
    each group then the key in that group, the account; the first enforcing refusal wins.

    `in_use` maps the use-hash fields ``"a"``, ``"f:<fn>"``, ``"g:<group>"``,
    ``"k:<fn>|<key>"`` and ``"kg:<group>|<key>"`` (`guard.wire`) to live counts. Shadow levels
    grant but still report the scope they would have refused with. (Rates: GCRA, checked
    after these, are modelled in tests/gcra_model.py.)"""
    f = cfg.functions.get(function, Function())
    own = cfg.groups_of(function)
    checks: list[tuple[str, int, int | None, bool]] = [
        (wire.SCOPE_FUNCTION, in_use.get(wire.IN_USE + function, 0), f.max_concurrency, False)
    ]
    if key is not None and f.keyed:
        used = in_use.get(wire.key_field(function, key), 0)
        checks.append((wire.SCOPE_KEY, used, f.key_cap(key), False))
    for gn in own:
        g = cfg.groups[gn]
        used = in_use.get(wire.GROUP_IN_USE + gn, 0)
        checks.append((wire.group_scope(gn), used, g.max_concurrency, g.mode == "shadow"))
        if key is not None and g.keyed:
            used = in_use.get(wire.group_key_field(gn, key), 0)
            checks.append((wire.group_key_scope(gn), used, g.key_cap(key), g.mode == "shadow"))
    held = sum(
        max(0, g.reserved - in_use.get(wire.GROUP_IN_USE + n, 0))
        for n, g in cfg.groups.items()
        if n not in own and g.reserved
    )
    used = in_use.get(wire.ACCOUNT, 0) + held
    checks.append((wire.SCOPE_ACCOUNT, used, cfg.max_concurrency, False))
    shadow = None
    for scope, used, limit, is_shadow in checks:
        if limit is None or used < limit:
            continue
        if is_shadow or f.mode == "shadow":
            shadow = shadow or scope
        else:
            return False, scope
    return True, shadow
