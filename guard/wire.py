"""The wire contract between clients and the Lua scripts: every field name, packed format,
script argument list and reply shape, the lease id rule, and the lease types with their one
JSON form.

I/O-free (no Redis, no HTTP; it imports only `guard.errors`): `guard.store` sends what this
module encodes and decodes what the scripts answer; `guard.model` packs plans with it; the
HTTP server writes lease JSON with `to_doc` and the HTTP client reads it back with
`from_doc`. The Lua scripts cite this module for the same names and formats (``common.lua``:
"Names and formats: guard/wire.py"), and ``docs/protocol.md`` describes the contract for
SDKs in other languages. Key names are `guard.keys`."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

# The protocol between clients and the scripts (docs/protocol.md "Versioning"): its major
# version, given to the scripts as PROTOCOL (guard/scripts.py), stamped by every config write
# in the cfg field PROTOCOL_FIELD and checked by acquire_lease.lua and write_config.lua. A
# change an older client would misread (a stored format, a reply's meaning) raises it;
# additions older clients ignore do not.
PROTOCOL_VERSION = 1

# -- fields of guard:{ns}:cfg -----------------------------------------------------------------

VERSION = "v"  # config version, incremented by every write (write_config.lua)
NS_DOC = "N"  # the namespace document (JSON)
GROUP_DOC = "G:"  # G:<group> -> the group document (JSON)
FUNCTION_DOC = "F:"  # F:<fn> -> the function document (JSON)
NS_PLAN = "p:ns"  # compiled namespace plan (PLAN_NS)
FUNCTION_PLAN = "p:f:"  # p:f:<fn> -> compiled function plan (PLAN_FUNCTION)
KEY_CAP_PLAN = "p:k:"  # p:k:<fn>|<key> -> that key's cap at fn (KEY_CAP), from key_overrides
GROUP_KEY_CAP_PLAN = "p:kg:"  # p:kg:<group>|<key> -> that key's cap in the group (KEY_CAP)
PLAN_PREFIX = "p:"  # plans are bytes; every other field is text
FENCE_FLOOR = "fh"  # fence high-water mark: written by acquire_lease.lua, kept by admin writes
OVERRIDE_DOC = "O:"  # O:f:<fn> / O:g:<group> -> a temporary override (JSON; guard.overrides)
OVERRIDE_KIND = {"function": "f", "group": "g"}  # the letter after O: and in the plan's tail
PROTOCOL_FIELD = "pv"  # protocol major of the stored formats: written by write_config.lua

# -- fields of guard:{ns}:use -----------------------------------------------------------------

ACCOUNT = "a"  # account in use
IN_USE = "f:"  # f:<fn> function in use
GROUP_IN_USE = "g:"  # g:<group> group in use
GRANTS = "n:"  # n:<fn> leases granted
EXPIRED = "x:"  # x:<fn> leases reaped after expiry
UNAVAILABLE = "u:"  # u:<fn> fail-open runs reported by clients
THROTTLES = "t:"  # t:<fn>|<scope> refusals
SHADOW_THROTTLES = "s:"  # s:<fn>|<scope> grants a shadow level would have refused
HOLD = "h:"  # h:<fn> EWMA of hold time (ms), behind retry_after
FENCE = "fence"  # last fence issued
REAP = "reap"  # lower bound of the earliest lease expiry (ms)
WAITERS_UNTIL = "wu"  # releases publish while now < wu (ms)
QUEUE_UNTIL = "w:"  # w:<fn> latest ticket deadline of fn's waiting queue (ms); past: no queue
TIMED_OUT = "o:"  # o:<fn> waits that ran out (the last try of a wait was refused)
EPOCH = "ep"  # quarantine: server run_id last seen
QUARANTINE_UNTIL = "qu"  # quarantine: grants refused until (ms)
MAX_TTL = "mt"  # quarantine: longest TTL granted (ms)
SCOPE_SEP = "|"  # between function and scope in t:/s: fields
KEY_IN_USE = "k:"  # k:<fn>|<key> the key's leases at fn (only while > 0; only keyed functions)
GROUP_KEY_IN_USE = "kg:"  # kg:<group>|<key> the key's leases in the group (only while > 0)
KEY_SEP = "|"  # between level name and key in k:/kg:/p:k:/p:kg: fields and rate keys
# r:a, r:g:<group>, r:f:<fn>: GCRA arrival time (µs, RATE_STATE) of the account, a group, a
# function (a key's is a key of its own: keys.rate_key)
RATE_STATE_FIELD = "r:"
RATE_STATE = struct.Struct(">d")

# Refusal scopes as stored and returned: "function", "group:<name>", "account", "quarantine",
# and for keys and rates (issue 14) "key", "group-key:<name>", "rate:account",
# "rate:group:<name>", "rate:function", "rate:key"
SCOPE_FUNCTION = "function"
SCOPE_ACCOUNT = "account"
SCOPE_QUARANTINE = "quarantine"
SCOPE_GROUP = "group:"
SCOPE_KEY = "key"  # the key's cap at the function (key_overrides / key_max_concurrency)
SCOPE_GROUP_KEY = "group-key:"  # group-key:<group>: the key's cap in the group
SCOPE_RATE_ACCOUNT = "rate:account"
SCOPE_RATE_GROUP = "rate:group:"  # rate:group:<group>
SCOPE_RATE_FUNCTION = "rate:function"
SCOPE_RATE_KEY = "rate:key"  # the function's key_rate_per_second, for this key
RATE_SCOPES = (SCOPE_RATE_ACCOUNT, SCOPE_RATE_FUNCTION, SCOPE_RATE_KEY)


def group_scope(group: str) -> str:
    return SCOPE_GROUP + group


def group_key_scope(group: str) -> str:
    return SCOPE_GROUP_KEY + group


def rate_group_scope(group: str) -> str:
    return SCOPE_RATE_GROUP + group


def is_rate_scope(scope: str) -> bool:
    """A rate refusal (its retry_after is exact: a token is available then)."""
    return scope.startswith("rate:")


def key_field(function: str, key: str) -> str:
    """k:<fn>|<key>: in use of `key` at `function`."""
    return KEY_IN_USE + function + KEY_SEP + key


def group_key_field(group: str, key: str) -> str:
    return GROUP_KEY_IN_USE + group + KEY_SEP + key


# A lease counted under keys.OTHER carries this mark before its function name in its meta
OTHER_MARK = "~"
# Lease ids: 16 raw bytes in Redis (hash field of guard:{ns}:lease), 32 hex digits in JSON.
LEASE_ID_BYTES = 16
# Entries named "" (use, lease) or SENTINEL (exp) keep the keys alive; never a lease.
SENTINEL = b"~" * 65

# -- packed formats (struct, big-endian; Lua's struct.pack uses the same letters) ------------

# p:ns = PLAN_NS (max, n) then n x (PLAN_RESERVE reserved, len, name): groups with reserved > 0
PLAN_NS = struct.Struct(">iB")
PLAN_RESERVE = struct.Struct(">iB")  # reserved, len(name); the name follows
# p:ns then ends with the temporary overrides in force, as text (none: nothing more), each
# OVERRIDE_ENTRY: NUL, kind letter, name, NUL, max ":" until_ms (server time) ";". Names hold
# no NUL, so acquire_lease.lua finds an entry with one plain string.find of NUL kind name NUL.
OVERRIDE_ENTRY = "\0{kind}{name}\0{max}:{until_ms};"
# p:f:<fn> = PLAN_FUNCTION (max, ttl_ms, shadow, on_unavailable, n) then n x
# (PLAN_GROUP group max, group shadow, len, name): the groups fn belongs to
PLAN_FUNCTION = struct.Struct(">iiBBB")
PLAN_GROUP = struct.Struct(">iBB")  # max, shadow, len(name); the name follows
UNLIMITED = -1  # a max of -1 in a plan: no limit
# Keys and rates (issue 14). A function plan whose function and groups have no key limit and
# no rate ends after its groups (the format above, nothing read). Otherwise PLAN_TAIL follows
# the groups: (1, function key max, function has key_overrides 0/1, function rate interval µs,
# function rate tolerance µs, key rate interval µs, key rate tolerance µs), then one
# PLAN_GROUP_TAIL per group in the same order: (group key max, has key_overrides 0/1, group
# rate interval µs, tolerance µs). An interval of 0 means no rate at that level (GCRA:
# model.rate_plan). A key is counted at a level with a key max >= 0 or key_overrides.
PLAN_TAIL = struct.Struct(">BiBdddd")
PLAN_GROUP_TAIL = struct.Struct(">iBdd")
KEY_CAP = struct.Struct(">i")  # p:k:/p:kg: values
# p:ns: the account rate, when set, is the first entry after the reserving groups (before
# the overrides), as text: NUL "r" interval_µs ":" tolerance_µs ";" (Python float repr:
# Lua's tonumber reads back the same double)
ACCOUNT_RATE_ENTRY = "\0r{interval!r}:{tolerance!r};"
ON_UNAVAILABLE_CODE = {None: 0, "open": 1, "closed": 2}
ON_UNAVAILABLE_NAME = {0: "", 1: "open", 2: "closed"}
# guard:{ns}:lease value = META (expires_ms, granted_ms, fence, ttl_ms, len(fn)) .. fn .. groups
# csv; Lua's format is META_LUA (c0 reads the name whose length precedes it). A lease whose key
# was counted somewhere ends with the key part: META_KEY_MARK, "1" or "0" (counted at the
# function: k:<fn>|<key>), the key, then NUL + group for each group it was counted in
# (kg:<group>|<key>). (After a comma: a protocol-1 script of an older release that reads it
# as one more group decrements a missing field, which it deletes: harmless.)
META = struct.Struct(">ddiiB")
META_LUA = ">ddiiBc0"
META_KEY_MARK = b",\0"


def parse_lease_id(value: str | bytes) -> bytes:
    """A lease id is 128 bits: 32 hex digits (a UUID's dashes are allowed) or 16 bytes."""
    if isinstance(value, bytes) and len(value) == LEASE_ID_BYTES:
        return value
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value.replace("-", ""))
        except ValueError:
            raw = b""
        if len(raw) == LEASE_ID_BYTES:
            return raw
    raise UsageError(f"lease_id must be 32 hex digits (128 bits), got {value!r}", "lease_id")


def _limit(v: int | None) -> int:
    return UNLIMITED if v is None else v


def _name(n: str) -> bytes:
    b = n.encode()
    return bytes((len(b),)) + b


def pack_ns_plan(
    max_concurrency: int | None,
    reserving: Sequence[tuple[str, int]],
    rate: tuple[float, float] = (0.0, 0.0),
) -> bytes:
    """p:ns: the account max and the (group, reserved) pairs with reserved > 0, then the
    account rate (interval, tolerance in µs) when set."""
    out = PLAN_NS.pack(_limit(max_concurrency), len(reserving))
    out += b"".join(struct.pack(">i", r) + _name(g) for g, r in reserving)
    if rate[0] > 0:
        out += ACCOUNT_RATE_ENTRY.format(interval=rate[0], tolerance=rate[1]).encode()
    return out


def pack_overrides(entries: Sequence[tuple[str, str, int, int]]) -> bytes:
    """The tail of p:ns: (kind, name, max, until_ms) entries, kind "function" or "group",
    in the order given (OVERRIDE_ENTRY each)."""
    return b"".join(
        OVERRIDE_ENTRY.format(kind=OVERRIDE_KIND[k], name=n, max=m, until_ms=u).encode()
        for k, n, m, u in entries
    )


def ns_plan_tail(raw: bytes) -> bytes:
    """What follows the reserving groups in p:ns: the packed overrides (`pack_overrides`)."""
    _, n = PLAN_NS.unpack_from(raw)
    pos = PLAN_NS.size
    for _ in range(n):
        pos += PLAN_RESERVE.size + PLAN_RESERVE.unpack_from(raw, pos)[1]
    return raw[pos:]


def pack_function_plan(
    max_concurrency: int | None,
    ttl_ms: int,
    shadow: bool,
    on_unavailable: str | None,
    groups: Sequence[tuple[str, int | None, bool]],
    keyed: KeyRates | None = None,
) -> bytes:
    """p:f:<fn>: the function's max, ttl cap, mode and policy, then each of its groups as
    (name, max, shadow); then, when `keyed` has anything set, PLAN_TAIL and the groups'
    PLAN_GROUP_TAIL entries."""
    out = PLAN_FUNCTION.pack(
        _limit(max_concurrency), ttl_ms, shadow, ON_UNAVAILABLE_CODE[on_unavailable], len(groups)
    )
    for g, gmax, gshadow in groups:
        out += struct.pack(">iB", _limit(gmax), gshadow) + _name(g)
    if keyed is not None and keyed.any():
        out += PLAN_TAIL.pack(
            1, _limit(keyed.key_max), keyed.key_overrides, *keyed.rate, *keyed.key_rate
        )
        for kmax, kov, rate in keyed.groups:
            out += PLAN_GROUP_TAIL.pack(_limit(kmax), kov, *rate)
    return out


@dataclass(frozen=True, slots=True)
class KeyRates:
    """The key and rate part of a function plan: the function's key max (None: none),
    whether it has key_overrides, its rate and key rate as (interval, tolerance) µs, and per
    group (in the plan's group order) (key max, has key_overrides, rate)."""

    key_max: int | None = None
    key_overrides: bool = False
    rate: tuple[float, float] = (0.0, 0.0)
    key_rate: tuple[float, float] = (0.0, 0.0)
    groups: tuple[tuple[int | None, bool, tuple[float, float]], ...] = ()

    def any(self) -> bool:
        return bool(
            self.key_max is not None
            or self.key_overrides
            or self.rate[0] > 0
            or self.key_rate[0] > 0
            or any(k is not None or o or r[0] > 0 for k, o, r in self.groups)
        )


def unpack_ns_plan(raw: bytes) -> tuple[int, list[tuple[str, int]]]:
    """(max, [(group, reserved)]); max -1 is unlimited. The inverse of `pack_ns_plan`."""
    mx, n = PLAN_NS.unpack_from(raw)
    pos, out = PLAN_NS.size, []
    for _ in range(n):
        r, ln = PLAN_RESERVE.unpack_from(raw, pos)
        pos += PLAN_RESERVE.size
        out.append((raw[pos : pos + ln].decode(), r))
        pos += ln
    return mx, out


def unpack_function_plan(raw: bytes) -> dict[str, Any]:
    """The fields of a function plan (the inverse of `pack_function_plan`)."""
    mx, ttl, shadow, onu, n = PLAN_FUNCTION.unpack_from(raw)
    pos, groups = PLAN_FUNCTION.size, []
    for _ in range(n):
        gm, gs, ln = PLAN_GROUP.unpack_from(raw, pos)
        pos += PLAN_GROUP.size
        groups.append((raw[pos : pos + ln].decode(), gm, bool(gs)))
        pos += ln
    out: dict[str, Any] = {
        "max": mx,
        "ttl_ms": ttl,
        "shadow": bool(shadow),
        "on_unavailable": ON_UNAVAILABLE_NAME[onu],
        "groups": groups,
    }
    if pos < len(raw):
        _, kmax, kov, rt, rtol, kt, ktol = PLAN_TAIL.unpack_from(raw, pos)
        pos += PLAN_TAIL.size
        gtail = []
        for _ in range(n):
            gk, gko, gt, gtol = PLAN_GROUP_TAIL.unpack_from(raw, pos)
            pos += PLAN_GROUP_TAIL.size
            gtail.append((gk, bool(gko), (gt, gtol)))
        out["keys"] = {
            "key_max": kmax,
            "key_overrides": bool(kov),
            "rate": (rt, rtol),
            "key_rate": (kt, ktol),
            "groups": gtail,
        }
    return out


def plan_ttl_ms(raw: bytes) -> int:
    """The ttl cap of a function plan (what renew and the quarantine read)."""
    return int(PLAN_FUNCTION.unpack_from(raw)[1])


# -- lease types ------------------------------------------------------------------------------


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _csv(v: Any) -> tuple[str, ...]:
    return tuple(g for g in _text(v).split(",") if g)


@dataclass(frozen=True, slots=True)
class Grant:
    """A granted lease (acquire). Times are server time in ms; JSON uses seconds."""

    lease_id: str  # 32 hex digits
    function: str
    fence: int
    expires_ms: int
    ttl_ms: int
    groups: tuple[str, ...]
    on_unavailable: str  # the function's stored policy, "" when unset
    shadow_scope: str  # the scope a shadow level would have refused, "" when none

    def to_doc(self) -> dict[str, Any]:
        """The 201 body of ``POST …/leases``."""
        return {
            "lease_id": self.lease_id,
            "function": self.function,
            "groups": list(self.groups),
            "expires_at": self.expires_ms / 1000,
            "fence": self.fence,
            "ttl_seconds": self.ttl_ms / 1000,
            "on_unavailable": self.on_unavailable,
            "shadow_scope": self.shadow_scope,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Grant:
        return cls(
            str(doc["lease_id"]),
            str(doc["function"]),
            int(doc["fence"]),
            round(doc["expires_at"] * 1000),
            round(doc["ttl_seconds"] * 1000),
            tuple(doc["groups"]),
            doc.get("on_unavailable") or "",
            doc.get("shadow_scope") or "",
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused acquire: the refusing scope and when to retry."""

    scope: str
    retry_after_ms: int
    on_unavailable: str

    def to_doc(self) -> dict[str, Any]:
        """The fields a 429 problem document adds (seconds)."""
        return {
            "scope": self.scope,
            "retry_after": self.retry_after_ms / 1000,
            "on_unavailable": self.on_unavailable,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Refusal:
        return cls(
            str(doc.get("scope", "account")),
            round(float(doc.get("retry_after", 1.0)) * 1000),
            doc.get("on_unavailable") or "",
        )


@dataclass(frozen=True, slots=True)
class Renewal:
    """A renewed lease: its new expiry and TTL."""

    lease_id: str
    expires_ms: int
    ttl_ms: int

    def to_doc(self) -> dict[str, Any]:
        """The 200 body of ``POST …/leases/{id}/renew``."""
        return {
            "lease_id": self.lease_id,
            "expires_at": self.expires_ms / 1000,
            "ttl_seconds": self.ttl_ms / 1000,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Renewal:
        return cls(
            str(doc["lease_id"]), round(doc["expires_at"] * 1000), round(doc["ttl_seconds"] * 1000)
        )


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A held lease as an admin lists it (``GET …/leases``, ``guard leases list``)."""

    lease_id: str
    function: str
    groups: tuple[str, ...]
    expires_ms: int
    granted_ms: int
    fence: int
    ttl_ms: int
    key: str | None = None  # the acquire's key, when it was counted at some level

    @classmethod
    def unpack(cls, raw_id: bytes, meta: bytes) -> LeaseInfo:
        """From a guard:{ns}:lease entry (META, then the name, then the groups csv)."""
        expires, granted, fence, ttl, n = META.unpack_from(meta)
        head = META.size
        fn = meta[head : head + n].decode().removeprefix(OTHER_MARK)
        groups, key, _, _ = split_meta_groups(meta[head + n :])
        return cls(raw_id.hex(), fn, groups, int(expires), int(granted), fence, ttl, key)

    def to_doc(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "function": self.function,
            "groups": list(self.groups),
            "expires_at": self.expires_ms / 1000,
            "fence": self.fence,
            "ttl_seconds": self.ttl_ms / 1000,
            "granted_at": self.granted_ms / 1000,
            **({"key": self.key} if self.key is not None else {}),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> LeaseInfo:
        return cls(
            str(doc["lease_id"]),
            str(doc["function"]),
            tuple(doc["groups"]),
            round(doc["expires_at"] * 1000),
            round(doc["granted_at"] * 1000),
            int(doc["fence"]),
            round(doc["ttl_seconds"] * 1000),
            doc.get("key"),
        )


def pack_meta(
    expires_ms: int,
    granted_ms: int,
    fence: int,
    ttl_ms: int,
    function: str,
    groups: Sequence[str],
    key: str | None = None,
    key_at_function: bool = False,
    key_groups: Sequence[str] = (),
) -> bytes:
    """A guard:{ns}:lease value as the scripts write it (for tests and other SDKs)."""
    fn = function.encode()
    out = META.pack(expires_ms, granted_ms, fence, ttl_ms, len(fn)) + fn + ",".join(groups).encode()
    if key is not None and (key_at_function or key_groups):
        out += META_KEY_MARK + (b"1" if key_at_function else b"0") + key.encode()
        out += b"".join(b"\0" + g.encode() for g in key_groups)
    return out


def split_meta_groups(tail: bytes) -> tuple[tuple[str, ...], str | None, bool, tuple[str, ...]]:
    """What follows the name in a lease meta -> (groups, key or None, counted at the
    function, groups the key was counted in)."""
    cut = tail.find(META_KEY_MARK)
    if cut < 0:
        return _csv(tail), None, False, ()
    parts = tail[cut + len(META_KEY_MARK) :].split(b"\0")
    head = parts[0]
    return (
        _csv(tail[:cut]),
        head[1:].decode(),
        head[:1] == b"1",
        tuple(p.decode() for p in parts[1:]),
    )


# -- script arguments and replies ---------------------------------------------------------------


def acquire_args(
    function: str,
    lease_id: bytes,
    ttl_ms: int,
    wait_ms: int = 0,
    pending: Mapping[str, int] | None = None,
    quarantine: bool = False,
    require_config: bool = False,
    last: bool = False,
    key: str | None = None,
) -> tuple[Any, ...]:
    """ARGV of acquire_lease.lua: function, lease id, ttl ms; then, only when one is set,
    wait ms (> 0: a refusal takes or refreshes a ticket in the function's waiting queue),
    fail-open counts ("fn=n,fn=n"), the quarantine flag, the require-config flag and the
    last-try flag (the wait ran out: a refusal drops the ticket and counts a timed-out wait)
    ("1" or ""), then the key (ARGV[9], only when given)."""
    if wait_ms or pending or quarantine or require_config or last or key:
        pend = ",".join(f"{f}={n}" for f, n in pending.items()) if pending else ""
        q, rc = "1" if quarantine else "", "1" if require_config else ""
        args = (function, lease_id, ttl_ms, wait_ms, pend, q, rc, "1" if last else "")
        return (*args, key) if key else args
    return (function, lease_id, ttl_ms)


def decode_acquire(
    reply: Sequence[Any], lease_id: bytes, function: str
) -> tuple[Grant | Refusal | None, str]:
    """acquire_lease.lua's reply -> (Grant or Refusal, config version; "" when the namespace
    has no config). A grant is {fence >= 1, expires_ms, ttl_ms, groups_csv, on_unavailable,
    shadow_scope, version}; a refusal {0, scope, retry_after_ms, on_unavailable, version};
    {-1} (require_config and no config) is (None, "")."""
    fence = int(reply[0])
    if fence < 0:
        return None, ""
    version = _text(reply[-1]) if reply[-1] else ""
    if fence > 0:
        g = Grant(
            lease_id.hex(),
            function,
            fence,
            int(reply[1]),
            int(reply[2]),
            _csv(reply[3]),
            _text(reply[4]),
            _text(reply[5]),
        )
        return g, version
    return Refusal(_text(reply[1]), int(reply[2]), _text(reply[3])), version


def renew_args(lease_id: bytes, ttl_ms: int = 0) -> tuple[Any, ...]:
    """ARGV of renew_lease.lua: lease id, ttl ms (0: the lease's own ttl)."""
    return (lease_id, ttl_ms)


def decode_renew(reply: Sequence[Any], lease_id: bytes) -> Renewal | None:
    """{1, expires_ms, ttl_ms} -> Renewal; {0} (not held) -> None."""
    if int(reply[0]) != 1:
        return None
    return Renewal(lease_id.hex(), int(reply[1]), int(reply[2]))


def release_args(lease_id: bytes) -> tuple[Any, ...]:
    """ARGV of release_lease.lua: lease id."""
    return (lease_id,)


def decode_release(reply: Any) -> bool:
    """1 when the lease was held (and is now released), 0 otherwise."""
    return bool(reply == 1)


def decode_usage(flat: Sequence[Any]) -> dict[str, str]:
    """read_usage.lua's flat field/value list -> {field: value}, without the sentinel."""
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2) if flat[i]}


# Fields of one entry of the guard:{ns}:audit stream (the entry id is the server time), in the
# order write_config.lua appends them; before/after are JSON.
AUDIT_FIELDS = ("actor", "action", "target", "before", "after")


def write_config_args(
    version: str,
    channel: str,
    set_fields: Mapping[str, str | bytes],
    del_fields: Sequence[str],
    audit: Sequence[str] = (),
    audit_cap: int = 0,
) -> list[str | bytes]:
    """ARGV of write_config.lua: expected version, release channel, audit cap (the stream's
    length after the append; 0 appends nothing), A, A audit field/value pairs (AUDIT_FIELDS),
    N, N field/value pairs, then the fields to delete."""
    if len(audit) % 2:
        raise ValueError("audit holds field/value pairs")
    args: list[str | bytes] = [version, channel, str(audit_cap if audit else 0)]
    args += [str(len(audit) // 2), *audit, str(len(set_fields))]
    for k, v in set_fields.items():
        args += [k, v]
    args += list(del_fields)
    return args


def decode_write_config(reply: Any) -> int | None:
    """The new version, or None when the expected version did not match (-1)."""
    v = int(reply)
    return None if v < 0 else v


# -- counters of the use hash -----------------------------------------------------------------


def counter(used: Mapping[str, str], field: str) -> int:
    """A level's in-use count (never below 0; a missing field is 0)."""
    return max(0, int(used.get(field, 0)))


def split_counter(field: str) -> tuple[str, str, str] | None:
    """A per-function counter field -> (prefix, function, scope); scope is "" except for
    t:/s: fields. None for fields that are not per-function counters."""
    prefix = field[:2]
    if prefix in (GRANTS, EXPIRED, UNAVAILABLE, TIMED_OUT):
        return prefix, field[2:], ""
    if prefix in (THROTTLES, SHADOW_THROTTLES) and SCOPE_SEP in field:
        fn, scope = field[2:].split(SCOPE_SEP, 1)
        return prefix, fn, scope
    return None
