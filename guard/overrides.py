"""Temporary overrides and audit entries — what they are and how they are stored; no I/O.

An *override* replaces the max_concurrency of one function or group until a server-time
deadline. It lives in the namespace's cfg hash beside the settings, but apart from them:

- ``O:f:<fn>`` / ``O:g:<group>``: the override as JSON (max, until, reason, actor, set_at);
- every override packed (`pack`) at the end of the namespace plan ``p:ns``, which every
  acquire reads anyway: with no override the script's only extra work is one length check
  (a separate field would cost every acquire an HMGET argument); with some, one plain
  string search for the function and one per group it belongs to. The script compares each
  deadline with the server's ``TIME``, so an override stops applying at its deadline with
  nothing running then.

Config writes (`guard apply`, ``serve --config``, PUT/PATCH of a group) never touch these
fields, so re-applying a limits file keeps an override in force; only override writes do,
and each of those drops the overrides whose deadline has passed.

An *audit entry* records one config write (who, what, on which target, before and after);
`entry_fields` builds it, bounded in size, for write_config.lua to append to the
namespace's capped stream in the same atomic step as the write."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import wire
from .errors import UsageError
from .model import check_limit, check_name

KINDS = ("function", "group")
MAX_OVERRIDE_SECONDS = 7 * 86400  # an override is for an incident, not a setting
MAX_REASON = 500  # characters
MAX_OVERRIDES = 256  # in force per namespace: bounds the tail of p:ns every acquire reads
AUDIT_MAX_LIMIT = 1000  # largest `limit` an audit read accepts
AUDIT_MAX_DOC = 16 * 1024  # bytes of a before/after document; larger ones are summarized

FIELD_PREFIX = wire.OVERRIDE_DOC  # cfg hash fields holding overrides (documents)
_KIND_OF = {letter: kind for kind, letter in wire.OVERRIDE_KIND.items()}


def check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise UsageError(f"kind must be 'function' or 'group' (got {kind!r})", "kind")
    return str(kind)


def check_seconds(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 < value <= MAX_OVERRIDE_SECONDS:
        raise UsageError(
            f"seconds must be a number > 0 and <= {MAX_OVERRIDE_SECONDS} (got {value!r})",
            "seconds",
        )
    return float(value)


def check_reason(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise UsageError(f"reason must be text of at most {MAX_REASON} characters", "reason")
    return value


def check_override_limit(value: Any) -> int:
    v = check_limit(value, "max_concurrency", nullable=False)
    assert v is not None
    return v


def field_name(kind: str, name: str) -> str:
    return f"{FIELD_PREFIX}{wire.OVERRIDE_KIND[kind]}:{name}"


def is_override_field(field: str) -> bool:
    return field.startswith(FIELD_PREFIX)


@dataclass(frozen=True, slots=True)
class Override:
    kind: str  # "function" | "group"
    name: str
    max_concurrency: int
    until_ms: int  # server time
    set_ms: int
    reason: str = ""
    actor: str = ""

    def active(self, now_ms: int) -> bool:
        return self.until_ms > now_ms

    def stored(self) -> str:
        doc = {
            "max_concurrency": self.max_concurrency,
            "until_ms": self.until_ms,
            "set_ms": self.set_ms,
            "reason": self.reason,
            "actor": self.actor,
        }
        return json.dumps(doc, sort_keys=True)

    def doc(self, now_ms: int) -> dict[str, Any]:
        """The override as the API, the CLI and the console show it (seconds, server time)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "max_concurrency": self.max_concurrency,
            "expires_at": self.until_ms / 1000,
            "seconds_left": max(0.0, (self.until_ms - now_ms) / 1000),
            "set_at": self.set_ms / 1000,
            "reason": self.reason,
            "actor": self.actor,
        }


def from_fields(fields: Mapping[str, str | bytes]) -> dict[tuple[str, str], Override]:
    """Every stored override (active or not) of a cfg hash, by (kind, name)."""
    out: dict[tuple[str, str], Override] = {}
    for k, v in fields.items():
        if not k.startswith(FIELD_PREFIX) or k[3:4] != ":":
            continue
        kind = _KIND_OF.get(k[2:3])
        if kind is None:
            continue
        d = json.loads(v)
        out[(kind, k[4:])] = Override(
            kind,
            k[4:],
            int(d["max_concurrency"]),
            int(d["until_ms"]),
            int(d["set_ms"]),
            str(d.get("reason", "")),
            str(d.get("actor", "")),
        )
    return out


def active(fields: Mapping[str, str | bytes], now_ms: int) -> list[Override]:
    return sorted(
        (o for o in from_fields(fields).values() if o.active(now_ms)),
        key=lambda o: (o.kind, o.name),
    )


def to_fields(overrides: Mapping[tuple[str, str], Override]) -> dict[str, str | bytes]:
    """The cfg documents for exactly these overrides (the plan's tail is `pack`)."""
    return {field_name(o.kind, o.name): o.stored() for o in overrides.values()}


def with_overrides(ns_plan: str | bytes, overrides: Any) -> bytes:
    """The namespace plan ``p:ns`` (as `guard.model.Config.plans` builds it) followed by
    the packed overrides."""
    base = ns_plan.encode() if isinstance(ns_plan, str) else ns_plan
    return base + pack(overrides)


def pack(overrides: Any) -> bytes:
    """The tail of ``p:ns`` that acquire_lease.lua reads (`guard.wire.pack_overrides`), in
    (kind, name) order."""
    ordered = sorted(overrides, key=lambda o: (o.kind, o.name))
    return wire.pack_overrides([(o.kind, o.name, o.max_concurrency, o.until_ms) for o in ordered])


def make(
    kind: str, name: str, max_concurrency: Any, seconds: Any, reason: Any, actor: str, now_ms: int
) -> Override:
    """A validated override starting at server time `now_ms`."""
    check_kind(kind)
    check_name(name, kind)
    m = check_override_limit(max_concurrency)
    s = check_seconds(seconds)
    return Override(kind, name, m, now_ms + int(s * 1000), now_ms, check_reason(reason), actor)


# -- audit -----------------------------------------------------------------------------------


def label(field: str) -> str:
    """A cfg field as the audit log names it: namespace, group:<n>, function:<n>, ..."""
    if field == wire.NS_DOC:
        return "namespace"
    if field.startswith(wire.GROUP_DOC):
        return "group:" + field[len(wire.GROUP_DOC) :]
    if field.startswith(wire.FUNCTION_DOC):
        return "function:" + field[len(wire.FUNCTION_DOC) :]
    if field.startswith(FIELD_PREFIX):
        return f"override:{_KIND_OF.get(field[2:3], '?')}:{field[4:]}"
    return field


def changes(
    old: Mapping[str, str | bytes], new: Mapping[str, str | bytes]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) of the settings documents that differ (plans are derived: skipped)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for f in sorted(set(old) | set(new)):
        if f == wire.VERSION or f.startswith(wire.PLAN_PREFIX) or old.get(f) == new.get(f):
            continue
        o, n = old.get(f), new.get(f)
        before[label(f)] = None if o is None else json.loads(o)
        after[label(f)] = None if n is None else json.loads(n)
    return before, after


def _bounded(doc: Mapping[str, Any]) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    if len(text) <= AUDIT_MAX_DOC:
        return text
    names = sorted(doc)
    return json.dumps({"truncated": True, "changed": len(names), "first": names[:50]})


def entry_fields(
    actor: str, action: str, target: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[str]:
    """Field/value pairs of one audit stream entry (time: the entry id, server time)."""
    values = (actor[:200], action, target[:300], _bounded(before), _bounded(after))
    return [x for pair in zip(wire.AUDIT_FIELDS, values, strict=True) for x in pair]


def entry_doc(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """One stream entry as ``audit()`` returns it."""
    return {
        "id": entry_id,
        "time": int(entry_id.split("-")[0]) / 1000,
        "actor": fields.get("actor", ""),
        "action": fields.get("action", ""),
        "target": fields.get("target", ""),
        "before": json.loads(fields.get("before") or "null"),
        "after": json.loads(fields.get("after") or "null"),
    }


def check_audit_limit(value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or not 1 <= value <= AUDIT_MAX_LIMIT:
        raise UsageError(f"limit must be an integer from 1 to {AUDIT_MAX_LIMIT}", "limit")
    return int(value)
