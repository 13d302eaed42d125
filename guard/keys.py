"""The one naming rule for every Redis key, channel and field guard uses.

Every key of a namespace carries the hash tag ``{ns}``, so on Redis Cluster a namespace lives
in one slot and one script sees all its levels. The Lua scripts receive these keys in KEYS in
this order. The fields the keys hold, and their formats, are `guard.wire`."""

from __future__ import annotations

import re

PREFIX = "guard"
NAMESPACES = f"{PREFIX}:namespaces"  # set of configured namespaces (no hash tag: admin only)

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")

DEFAULT_LEASE_TTL = 900.0  # seconds: Lambda's longest timeout
MAX_LEASE_TTL = 86400.0  # seconds: the cap for lease_ttl_seconds and any ttl
BACKSTOP_TTL = 7 * 86400.0  # seconds a namespace's lease and counter keys outlive inactivity


def lease_keys(ns: str) -> list[str]:
    """KEYS for the lease scripts: cfg, use, exp, lease."""
    tag = f"{PREFIX}:{{{ns}}}"
    return [f"{tag}:cfg", f"{tag}:use", f"{tag}:exp", f"{tag}:lease"]


def config_key(ns: str) -> str:
    return f"{PREFIX}:{{{ns}}}:cfg"


def release_channel(ns: str) -> str:
    """Pub/sub channel a release publishes on while some acquire waits (and config writes).
    release_lease.lua derives the same name from the use key: "guard:{ns}:" + "released"."""
    return f"{PREFIX}:{{{ns}}}:released"
