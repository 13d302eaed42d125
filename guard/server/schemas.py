"""Request and response bodies of the HTTP API as pydantic v2 models.

The same models validate requests and generate ``/openapi.json``, so the document cannot drift
from what the server accepts. Unknown fields are rejected (``extra="forbid"``). Deeper rules
(Σ reserved, one reserving group per function, …) stay in `guard.model`, reached through
`guard.admin.Admin`, so HTTP and Python enforce exactly the same settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.config import JsonDict

from .. import keys, problems
from .. import overrides as ov
from ..model import MAX_BURST, MAX_KEY_OVERRIDES, MAX_LIMIT, MAX_MEMBERS, MAX_RATE, MIN_RATE

MAX_WAIT_SECONDS = 30.0  # a lease request holds a server thread while it waits; bound it
MAX_WAIT_MORE_SECONDS = 3600.0  # a longer wait the client goes on with in later requests


def _json_number(value: Any) -> Any:
    """One coercion rule for every numeric field: a JSON number, never a string or a boolean
    (pydantic's lax mode would read ``"100"`` as 100 and ``true`` as 1). An integer field
    takes a number with no fractional part, ``2.0`` included — JSON Schema's ``integer`` —
    so a client generated from /openapi.json and the server agree."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str):
        raise ValueError("must be a number, not a string")
    return value


JsonNumber = BeforeValidator(_json_number)
Name = Annotated[str, Field(pattern=keys.NAME_RE.pattern, max_length=128)]
# Bounds come first: a validator placed before them makes pydantic write its own ge/le keys
# into the JSON Schema instead of minimum/maximum.
Limit = Annotated[int, Field(ge=0, le=MAX_LIMIT), JsonNumber]
Ttl = Annotated[float, Field(ge=keys.MIN_LEASE_TTL, le=keys.MAX_LEASE_TTL), JsonNumber]
Count = Annotated[int, Field(ge=1, le=1_000_000), JsonNumber]
WaitSeconds = Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS), JsonNumber]


def _whole(value: float) -> float | int:
    """A rate of 5 stays 5 (not 5.0) through a request and a reply: what is stored and read
    back is the same over HTTP as straight to Redis (`guard.model.check_rate` keeps ints)."""
    return int(value) if float(value).is_integer() else value


# Keys and rates (issue 14; guard.model): a rate in grants per second, a burst in grants.
Whole = PlainSerializer(_whole)
Rate = Annotated[float, Field(ge=MIN_RATE, le=MAX_RATE), JsonNumber, Whole]
RateOut = Annotated[float, Whole]
Burst = Annotated[int, Field(ge=1, le=MAX_BURST), JsonNumber]
Key = Annotated[str, Field(pattern=keys.NAME_RE.pattern, max_length=128)]
WaitMoreSeconds = Annotated[float, Field(ge=0, le=MAX_WAIT_MORE_SECONDS), JsonNumber]
# A map keyed by names: say so in the schema too (pydantic emits patternProperties only).
NAME_KEYS: JsonDict = {
    "propertyNames": {"pattern": keys.NAME_RE.pattern},
    "additionalProperties": False,
}
LEASE_ID_RE = r"^[0-9a-fA-F]{32}$"
LeaseId = Annotated[str, Field(pattern=LEASE_ID_RE, description="128 bits as 32 hex")]
Mode = Literal["enforce", "shadow"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TagSelector(Strict):
    tags: dict[Annotated[str, Field(min_length=1)], str] = Field(min_length=1)


class StackSelector(Strict):
    stack: str = Field(min_length=1)


class NamespaceIn(Strict):
    """PUT: the namespace's account-level settings; the rate fields left out are unset."""

    max_concurrency: Limit | None
    rate_per_second: Rate | None = Field(
        default=None, description="account GCRA rate: grants per second (all functions)"
    )
    rate_burst: Burst | None = Field(
        default=None, description="grants at once after an idle period (default: ceil(rate))"
    )


def _key_overrides() -> Any:
    return Field(
        default_factory=dict,
        max_length=MAX_KEY_OVERRIDES,
        json_schema_extra=NAME_KEYS,
        description="{key: max}: a key's own cap, instead of key_max_concurrency",
    )


class GroupIn(Strict):
    """PUT: the whole group (missing fields take their defaults). PATCH: only the fields
    given change (the defaults below do not apply)."""

    max_concurrency: Limit | None = None
    reserved: Limit = 0
    members: list[Name] = Field(
        default_factory=list, max_length=MAX_MEMBERS, json_schema_extra={"uniqueItems": True}
    )
    selector: TagSelector | StackSelector | None = None
    mode: Mode = "enforce"
    key_max_concurrency: Limit | None = Field(
        default=None, description="the cap of every key in the group (key of an acquire)"
    )
    key_overrides: dict[Key, Limit] = _key_overrides()
    rate_per_second: Rate | None = None
    rate_burst: Burst | None = None


class FunctionIn(Strict):
    """PUT: the whole function; PATCH: only the fields given."""

    max_concurrency: Limit | None = None
    lease_ttl_seconds: Ttl = keys.DEFAULT_LEASE_TTL
    on_unavailable: Literal["open", "closed"] | None = None
    mode: Mode = "enforce"
    key_max_concurrency: Limit | None = Field(
        default=None, description="the cap of every key (key of an acquire) at this function"
    )
    key_overrides: dict[Key, Limit] = _key_overrides()
    rate_per_second: Rate | None = None
    rate_burst: Burst | None = None
    key_rate_per_second: Rate | None = Field(
        default=None, description="GCRA rate of each key at this function"
    )
    key_rate_burst: Burst | None = None


class LeaseIn(Strict):
    function: Name
    key: Key | None = Field(
        default=None, description="per tenant, customer, API key: per-key limits and key rate"
    )
    ttl_seconds: Ttl | None = Field(
        default=None, description="default and upper bound: the function's lease_ttl_seconds"
    )
    lease_id: LeaseId | None = Field(
        default=None, description="chosen by the client so a retried acquire is one lease"
    )
    wait_seconds: WaitSeconds = Field(default=0.0, description="wait for a slot, at most 30 s")
    wait_more_seconds: WaitMoreSeconds = Field(
        default=0.0,
        description="how much longer the caller waits after this request, coming back with "
        "the same lease_id: its place in the queue is kept at the end of this request's wait "
        "(at most 3600 s)",
    )
    unavailable: dict[Name, Count] = Field(
        default_factory=dict,
        max_length=keys.MAX_PENDING_NAMES,
        json_schema_extra=NAME_KEYS,
        description="fail-open runs the SDK counted while the service was out of reach; "
        "added to guard_unavailable_total",
    )


class RenewIn(Strict):
    ttl_seconds: Ttl | None = None


# -- responses ----------------------------------------------------------------------------


class NamespaceOut(BaseModel):
    name: str
    max_concurrency: int | None
    rate_per_second: RateOut | None = None  # shown only when set
    rate_burst: int | None = None


class NamespaceList(BaseModel):
    namespaces: list[str]


class GroupOut(BaseModel):
    name: str
    max_concurrency: int | None
    reserved: int
    members: list[str]
    selector: dict[str, Any] | None
    mode: Mode
    # keys and rates: shown only when set
    key_max_concurrency: int | None = None
    key_overrides: dict[str, int] | None = None
    rate_per_second: RateOut | None = None
    rate_burst: int | None = None


class GroupList(BaseModel):
    groups: list[GroupOut]


class FunctionOut(BaseModel):
    name: str
    max_concurrency: int | None
    lease_ttl_seconds: float
    on_unavailable: Literal["open", "closed"] | None
    mode: Mode
    # keys and rates: shown only when set
    key_max_concurrency: int | None = None
    key_overrides: dict[str, int] | None = None
    rate_per_second: RateOut | None = None
    rate_burst: int | None = None
    key_rate_per_second: RateOut | None = None
    key_rate_burst: int | None = None


class FunctionList(BaseModel):
    functions: list[FunctionOut]


class OverrideIn(Strict):
    """A temporary max_concurrency for one function or group (0 pauses it)."""

    max_concurrency: Limit
    seconds: Annotated[float, Field(gt=0, le=ov.MAX_OVERRIDE_SECONDS), JsonNumber]
    reason: str = Field(default="", max_length=ov.MAX_REASON)


class OverrideOut(BaseModel):
    kind: Literal["function", "group"]
    name: str
    max_concurrency: int
    expires_at: float = Field(description="server time, epoch seconds")
    seconds_left: float
    set_at: float
    reason: str
    actor: str = Field(description="who set it (the token's name over HTTP)")


class OverrideList(BaseModel):
    overrides: list[OverrideOut]


class AuditEntry(BaseModel):
    id: str = Field(description="stream entry id; its first part is the server time in ms")
    time: float = Field(description="server time, epoch seconds")
    actor: str
    action: str
    target: str
    before: Any
    after: Any


class AuditList(BaseModel):
    entries: list[AuditEntry]


class LevelUse(BaseModel):
    in_use: int
    max_concurrency: int | None
    override: OverrideOut | None = Field(
        default=None, description="the temporary override in force, if any"
    )


class GroupUse(LevelUse):
    reserved: int


class UsageOut(BaseModel):
    account: LevelUse
    groups: dict[str, GroupUse]
    functions: dict[str, LevelUse]


class KeyUse(BaseModel):
    key: str
    in_use: int
    max_concurrency: int | None = Field(description="the key's cap here (override or default)")


class KeyUsageOut(BaseModel):
    """The top keys by in use at a function or group (``?top=N``, 1..1000)."""

    kind: Literal["function", "group"]
    name: str
    in_use: int = Field(description="all leases of the level, keyed or not")
    max_concurrency: int | None
    key_max_concurrency: int | None
    keys_in_use: int = Field(description="keys holding at least one lease here (scanned)")
    complete: bool = Field(description="false: the bounded scan stopped before the end")
    keys: list[KeyUse]


class LeaseOut(BaseModel):
    lease_id: str
    function: str
    groups: list[str]
    expires_at: float = Field(description="server time, epoch seconds")
    fence: int
    ttl_seconds: float
    on_unavailable: str = Field(description="the function's stored policy ('' when unset)")
    shadow_scope: str = Field(description="the scope a shadow level would have refused, or ''")


class RenewalOut(BaseModel):
    lease_id: str
    expires_at: float
    ttl_seconds: float


class HeldLease(BaseModel):
    lease_id: str
    function: str
    groups: list[str]
    expires_at: float
    fence: int
    ttl_seconds: float
    granted_at: float
    key: str | None = Field(default=None, description="the acquire's key, when it was counted")


class LeaseList(BaseModel):
    leases: list[HeldLease]


class Problem(BaseModel):
    """RFC 9457 problem details; 429 adds scope, function, retry_after."""

    type: str = Field(
        description="urn:guard:problem:<slug> (docs/http.md, Problem types); about:blank for "
        "a status with no type of its own",
        json_schema_extra={"enum": [*(t.uri for t in problems.TYPES.values()), "about:blank"]},
    )
    title: str
    status: int
    detail: str
    field: str | None = None
    scope: str | None = None
    function: str | None = None
    retry_after: float | None = None
    on_unavailable: str | None = None


class Health(BaseModel):
    status: str
    detail: str | None = None


class ConfigDoc(Strict):
    """A namespace's whole settings (``GET``/``PUT …/{ns}/config``; ``guard apply``)."""

    max_concurrency: Limit | None = None
    rate_per_second: Rate | None = None
    rate_burst: Burst | None = None
    groups: dict[Name, GroupIn] = Field(default_factory=dict, json_schema_extra=NAME_KEYS)
    functions: dict[Name, FunctionIn] = Field(default_factory=dict, json_schema_extra=NAME_KEYS)
