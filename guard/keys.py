"""The one naming rule for every Redis key, channel and field guard uses.

Every key of a namespace carries the hash tag ``{ns}``, so on Redis Cluster a namespace lives
in one slot and one script sees all its levels. The Lua scripts receive these keys in KEYS in
this order. The fields the keys hold, and their formats, are `guard.wire`."""

from __future__ import annotations

import re

PREFIX = "guard"
NAMESPACES = f"{PREFIX}:namespaces"  # set of configured namespaces (no hash tag: admin only)

# Checked with `fullmatch` (Python's `$` alone also matches before a trailing newline); the
# anchors stay for the JSON Schema patterns built from them.
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")

DEFAULT_LEASE_TTL = 900.0  # seconds: Lambda's longest timeout
MAX_LEASE_TTL = 86400.0  # seconds: the cap for lease_ttl_seconds and any ttl
MIN_LEASE_TTL = 0.001  # seconds: TTLs are kept in whole milliseconds (`ttl_ms` rounds)
BACKSTOP_TTL = 7 * 86400.0  # seconds a namespace's lease and counter keys outlive inactivity
FENCE_BLOCK = 4096  # fences reserved in the cfg hash at a time (see common.lua "fh")

# Bounds on what clients can make a namespace hold (docs/guarantees.md "Bounds").
MAX_PENDING_NAMES = 32  # names in one acquire's fail-open count map ("unavailable")
MAX_UNCONFIGURED_NAMES = 200  # functions without a plan whose counters are kept by name
IDLE_CLEANUP = 86400.0  # seconds after its last acquire an unconfigured name is cleaned
TICKET_TTL = 3.0  # seconds a waiting ticket lives unless its waiter retries (it does every 1 s)
WAITER_RETRY = 1.0  # seconds: the longest sleep of a waiter between retries (< TICKET_TTL)
AUDIT_MAX_ENTRIES = 1000  # guard:{ns}:audit is trimmed to this length on every append
OTHER = "~other"  # counter/label name for everything beyond those bounds (not a valid name)


def ttl_ms(seconds: float) -> int:
    """A TTL in whole milliseconds, the scripts' resolution (rounded; `check_ttl` keeps it
    >= 1)."""
    return max(1, round(seconds * 1000))


def lease_keys(ns: str) -> list[str]:
    """KEYS for the lease scripts: cfg, use, exp, lease."""
    tag = f"{PREFIX}:{{{ns}}}"
    return [f"{tag}:cfg", f"{tag}:use", f"{tag}:exp", f"{tag}:lease"]


def idle_key(ns: str) -> str:
    """zset: function without a plan -> its last acquire (ms), the names counted by name.
    Not in KEYS: common.lua derives it from the use key ("guard:{ns}:" + "idle")."""
    return f"{PREFIX}:{{{ns}}}:idle"


def queue_key(ns: str, function: str) -> str:
    """zset: lease id -> when it first queued (µs, server time): `function`'s waiting queue
    (tickets), in arrival order. Beside it ``queue_deadline_key``. Not in KEYS:
    acquire_lease.lua and release_lease.lua derive both from the use key ("guard:{ns}:" +
    "q:" + counter name, the function's own name or OTHER)."""
    return f"{PREFIX}:{{{ns}}}:q:{function}"


def queue_deadline_key(ns: str, function: str) -> str:
    """zset: lease id -> when its ticket lapses (ms): min(its wait's end, last retry +
    TICKET_TTL). Derived in Lua as "guard:{ns}:" + "qd:" + counter name."""
    return f"{PREFIX}:{{{ns}}}:qd:{function}"


def config_key(ns: str) -> str:
    return f"{PREFIX}:{{{ns}}}:cfg"


def release_channel(ns: str) -> str:
    """Pub/sub channel a release publishes on while some acquire waits (and config writes).
    release_lease.lua derives the same name from the use key: "guard:{ns}:" + "released"."""
    return f"{PREFIX}:{{{ns}}}:released"


def audit_key(ns: str) -> str:
    """stream: one entry per config write (fields: guard.wire.AUDIT_FIELDS), capped at
    AUDIT_MAX_ENTRIES. KEYS[2] of write_config.lua."""
    return f"{PREFIX}:{{{ns}}}:audit"


def rate_key(ns: str, level: str) -> str:
    """string: the GCRA state (theoretical arrival time, µs, a packed double) of a key's rate
    level, expiring when the level is back to its full burst (so an idle key leaves nothing).
    `level` is "k:<fn>|<key>" (the account, group and function levels are fields of the use
    hash: wire.RATE_STATE_FIELD). Not in KEYS: acquire_lease.lua derives it from the use key
    ("guard:{ns}:" + "r:" + level)."""
    return f"{PREFIX}:{{{ns}}}:r:{level}"
