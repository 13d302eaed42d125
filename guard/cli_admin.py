"""``guard namespaces|groups|functions|leases …``: resource commands of the CLI.

Each works through `guard.cli_common.Target` (HTTP API or Redis, one `AdminAPI`). The write
verbs are named for what happens to the options left out, because that is what bites:

- ``set`` — the everyday verb: creates the resource, or changes only the options given;
- ``put`` — replaces the resource (the HTTP PUT): options not given take their defaults, and
  it says on stderr which stored settings that reset;
- ``patch`` — changes only the options given of an existing resource (the HTTP PATCH).

Read commands print a table, or JSON for one resource; ``--json`` gives the HTTP API's body."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from .cli_common import JSON, Target, echo_json, limit_arg, pass_target, table
from .errors import NotFound
from .keys import MAX_TOP_KEYS
from .wire import parse_lease_id


def _lim(v: Any) -> str:
    return "-" if v is None else str(v)


@click.group()
def namespaces() -> None:
    """The account-wide limit of a namespace."""


@namespaces.command("list")
@JSON
@pass_target
def ns_list(target: Target, as_json: bool) -> None:
    """Namespaces that hold settings."""
    names = target.admin().list_namespaces()
    if as_json:
        echo_json({"namespaces": names})
    else:
        click.echo("\n".join(names))


@namespaces.command("get")
@click.argument("name", required=False)
@JSON
@pass_target
def ns_get(target: Target, name: str | None, as_json: bool) -> None:
    """A namespace's account-wide limit, as JSON (NAME defaults to -n)."""
    echo_json(target.admin(name).get_namespace())


@namespaces.command("set")
@click.argument("name", required=False)
@click.option("--max-concurrency", help="an integer, or 'none' for no limit")
@click.option("--rate-per-second", help="account rate (grants per second), or 'none'")
@click.option("--rate-burst", help="grants at once after an idle period, or 'none'")
@pass_target
def ns_set(
    target: Target,
    name: str | None,
    max_concurrency: str | None,
    rate_per_second: str | None,
    rate_burst: str | None,
) -> None:
    """Set a namespace's account-wide limit and rate (NAME defaults to -n); the options not
    given keep their stored values."""
    given = {
        "max_concurrency": max_concurrency,
        "rate_per_second": rate_per_second,
        "rate_burst": rate_burst,
    }
    if all(v is None for v in given.values()):
        raise click.UsageError("give --max-concurrency, --rate-per-second or --rate-burst")
    admin = target.admin(name)
    cur = admin.get_namespace()
    fields = {k: cur.get(k) for k in given} | _fields(given)
    if rate_per_second is not None and fields["rate_per_second"] is None:
        fields["rate_burst"] = None  # no rate: no burst either
    echo_json(admin.set_namespace(**fields))


RATES = ("rate_per_second", "key_rate_per_second")
BURSTS = ("rate_burst", "key_rate_burst")


def _number(value: str, name: str, kind: type[float] | type[int]) -> float | int | None:
    """``none`` → None (unset); else a number (validated by the admin, naming the field)."""
    if value.lower() in ("none", "null"):
        return None
    try:
        return kind(value)
    except ValueError:
        hint = "--" + name.replace("_", "-")
        what = "a number" if kind is float else "an integer"
        raise click.BadParameter(
            f"expected {what} or 'none', got {value!r}", param_hint=hint
        ) from None


def _key_overrides(value: str) -> dict[str, Any]:
    """``acme=10,tiny=0`` or a JSON object ``{"acme": 10}``; ``none`` or ``{}``: no overrides."""
    hint = "--key-overrides"
    if value.strip().lower() in ("none", "null", ""):
        return {}
    if value.lstrip().startswith("{"):
        try:
            doc = json.loads(value)
        except ValueError:
            raise click.BadParameter("not valid JSON", param_hint=hint) from None
        if not isinstance(doc, dict):
            raise click.BadParameter("expected a JSON object", param_hint=hint)
        return doc
    out: dict[str, Any] = {}
    for part in value.split(","):
        k, sep, v = part.strip().partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=MAX, got {part.strip()!r}", param_hint=hint)
        try:
            out[k.strip()] = int(v)
        except ValueError:
            raise click.BadParameter(
                f"expected an integer max, got {v!r}", param_hint=hint
            ) from None
    return out


def _fields(given: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in given.items():
        if v is None:
            continue
        if k in ("max_concurrency", "key_max_concurrency"):
            v = limit_arg(v)
        elif k in RATES:
            v = _number(v, k, float)
        elif k in BURSTS:
            v = _number(v, k, int)
        elif k == "key_overrides":
            v = _key_overrides(v)
        elif k == "members":
            v = [m.strip() for m in v.split(",") if m.strip()]
        elif k == "selector":
            try:
                v = json.loads(v)
            except ValueError:
                raise click.BadParameter("selector must be JSON", param_hint="--selector") from None
        out[k] = v
    return out


def _changes(old: dict[str, Any], new: dict[str, Any], given: dict[str, Any]) -> list[str]:
    return [
        f"{k} {json.dumps(old[k])} -> {json.dumps(new.get(k))}"
        for k in old
        if k != "name" and k not in given and old[k] != new.get(k)
    ]


def _resource(kind: str, options: list[Any], defaults: str) -> click.Group:
    """list/get/set/put/patch/delete for `kind` ('group' or 'function')."""
    grp = click.Group(f"{kind}s", help=f"{kind.capitalize()} settings.")

    def opts(f: Any) -> Any:
        for o in reversed(options):
            f = o(f)
        return f

    def call(target: Target, verb: str, *args: Any, **kw: Any) -> Any:
        return getattr(target.admin(), f"{verb}_{kind}")(*args, **kw)

    @grp.command("list", help=f"Every {kind} of the namespace.")
    @JSON
    @pass_target
    def list_(target: Target, as_json: bool) -> None:
        docs = getattr(target.admin(), f"list_{kind}s")()
        if as_json:
            echo_json({f"{kind}s": docs})
        elif kind == "group":
            rows = [
                [
                    d["name"],
                    _lim(d["max_concurrency"]),
                    str(d["reserved"]),
                    d["mode"],
                    ",".join(d["members"]),
                ]
                for d in docs
            ]
            table(rows, ["NAME", "MAX", "RESERVED", "MODE", "MEMBERS"])
        else:
            rows = [
                [
                    d["name"],
                    _lim(d["max_concurrency"]),
                    f"{d['lease_ttl_seconds']:g}",
                    d["on_unavailable"] or "-",
                    d["mode"],
                ]
                for d in docs
            ]
            table(rows, ["NAME", "MAX", "TTL", "ON_UNAVAILABLE", "MODE"])

    @grp.command("get", help=f"One {kind}'s settings, as JSON.")
    @click.argument("name")
    @JSON
    @pass_target
    def get(target: Target, name: str, as_json: bool) -> None:
        doc = call(target, "get", name)
        if doc is None:
            raise click.ClickException(f"no {kind} {name!r}")
        echo_json(doc)

    @grp.command(
        "set",
        short_help="Create, or change only the options given (everyday).",
        help=f"Create a {kind}, or change only the options given (the others "
        "keep their stored values). The everyday verb.",
    )
    @click.argument("name")
    @opts
    @pass_target
    def set_(target: Target, /, name: str, **given: Any) -> None:
        fields = _fields(given)
        try:
            doc = call(target, "patch", name, **fields)
        except NotFound:  # not there yet: create it with the options given
            doc = call(target, "put", name, **fields)
        echo_json(doc)

    @grp.command(
        "put",
        short_help="Replace whole: options not given take their defaults.",
        help=f"Replace a {kind} whole: options not given take their defaults "
        f"({defaults}), whatever was stored. Use 'set' to change only some.",
    )
    @click.argument("name")
    @opts
    @pass_target
    def put(target: Target, /, name: str, **given: Any) -> None:
        fields = _fields(given)
        old = call(target, "get", name)
        doc = call(target, "put", name, **fields)
        reset = _changes(old, doc, fields) if old else []
        if reset:
            click.echo(
                f"note: put replaced {kind} {name}; options not given took their "
                f"defaults: {', '.join(reset)} (to change only the options given, use "
                f"'guard {kind}s set')",
                err=True,
            )
        echo_json(doc)

    @grp.command(
        "patch",
        short_help=f"Change only the options given of an existing {kind}.",
        help=f"Change only the options given of an existing {kind} (the "
        "HTTP PATCH; fails when it does not exist).",
    )
    @click.argument("name")
    @opts
    @pass_target
    def patch(target: Target, /, name: str, **given: Any) -> None:
        echo_json(call(target, "patch", name, **_fields(given)))

    @grp.command("keys", help=f"The keys holding the most leases at a {kind} (per-key usage).")
    @click.argument("name")
    @click.option(
        "--top",
        type=click.IntRange(1, MAX_TOP_KEYS),
        default=10,
        show_default=True,
        help="how many keys, most in use first",
    )
    @JSON
    @pass_target
    def keys_(target: Target, name: str, top: int, as_json: bool) -> None:
        doc = target.admin().key_usage(kind, name, top)
        if as_json:
            echo_json(doc)
            return
        rows = [[k["key"], str(k["in_use"]), _lim(k["max_concurrency"])] for k in doc["keys"]]
        table(rows, ["KEY", "IN_USE", "MAX"])
        if not doc["complete"]:
            click.echo("note: the scan stopped early; more keys may hold leases", err=True)

    @grp.command("delete", help=f"Delete a {kind}'s settings.")
    @click.argument("name")
    @pass_target
    def delete(target: Target, name: str) -> None:
        if not call(target, "delete", name):
            raise click.ClickException(f"no {kind} {name!r}")
        click.echo(f"deleted {kind} {name}")

    return grp


MODE = click.option(
    "--mode",
    type=click.Choice(["enforce", "shadow"]),
    help="shadow: count and report, never refuse",
)
MAX = click.option("--max-concurrency", help="an integer, or 'none' for no limit")
# keys and rates (issue 14): docs/sdk.md "Keys" and "Rates"
KEY_MAX = click.option(
    "--key-max-concurrency", help="the cap of every key (key= of an acquire), or 'none'"
)
KEY_OVERRIDES = click.option(
    "--key-overrides", help="a key's own cap: 'acme=10,tiny=0' or JSON; 'none' clears"
)
RATE = click.option("--rate-per-second", help="GCRA rate (grants per second), or 'none'")
BURST = click.option("--rate-burst", help="grants at once after an idle period, or 'none'")
groups = _resource(
    "group",
    [
        MAX,
        click.option(
            "--reserved",
            type=click.IntRange(min=0),
            help="slots of the account limit only this group may use",
        ),
        click.option("--members", help="comma-separated function names"),
        click.option("--selector", help='JSON, e.g. {"tags": {"team": "data"}} (see sync-aws)'),
        MODE,
        KEY_MAX,
        KEY_OVERRIDES,
        RATE,
        BURST,
    ],
    "no max, reserved 0, no members, no selector, mode enforce",
)
functions = _resource(
    "function",
    [
        MAX,
        click.option(
            "--lease-ttl-seconds",
            type=click.FloatRange(min=0, min_open=True),
            help="longest a lease lives without renewal (default 900)",
        ),
        click.option(
            "--on-unavailable",
            type=click.Choice(["open", "closed"]),
            help="what the SDK does when the store is out of reach",
        ),
        MODE,
        KEY_MAX,
        KEY_OVERRIDES,
        RATE,
        BURST,
        click.option("--key-rate-per-second", help="GCRA rate of each key, or 'none'"),
        click.option("--key-rate-burst", help="burst of each key's rate, or 'none'"),
    ],
    "no max, lease_ttl_seconds 900, on_unavailable unset, mode enforce",
)


@click.group()
def leases() -> None:
    """Held leases."""


def _when(epoch: float, now: float) -> str:
    """``2026-12-01 21:22:24Z (in 1m59s)``: UTC, and how far from now."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))
    d = round(epoch - now)
    span = abs(d)
    text = (
        f"{span}s"
        if span < 60
        else f"{span // 60}m{span % 60:02d}s"
        if span < 3600
        else f"{span // 3600}h{span % 3600 // 60:02d}m"
    )
    return f"{stamp} ({'now' if d == 0 else 'in ' + text if d > 0 else text + ' ago'})"


@leases.command("list")
@click.option("--function", help="only this function's leases")
@JSON
@pass_target
def leases_list(target: Target, function: str | None, as_json: bool) -> None:
    """Leases held now (expired ones are not listed), with when each was granted and expires."""
    docs = target.leases(function)
    if as_json:
        echo_json({"leases": docs})
        return
    now = time.time()
    rows = [
        [
            d["lease_id"],
            d["function"],
            ",".join(g for g in d["groups"] if g) or "-",
            str(d["fence"]),
            _when(d["granted_at"], now),
            _when(d["expires_at"], now),
        ]
        for d in docs
    ]
    table(rows, ["LEASE", "FUNCTION", "GROUPS", "FENCE", "GRANTED", "EXPIRES"])


@leases.command("release")
@click.argument("lease_id")
@pass_target
def leases_release(target: Target, lease_id: str) -> None:
    """Release a held lease now, e.g. one whose holder hung and will not give it back.

    Its slot is free at once. A holder still running finds its lease gone at its next renew
    or release; work it does after that is unguarded, which is what its fence is for."""
    raw = parse_lease_id(lease_id)
    if not target.release(raw):
        raise click.ClickException(f"lease {raw.hex()} is not held (expired or released)")
    click.echo(f"released lease {raw.hex()}")
