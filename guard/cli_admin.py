"""``guard namespaces|groups|functions|leases …``: resource commands of the CLI.

Each works through `guard.cli.Target` (HTTP API or Redis, same methods). put replaces a
resource (unset options take their defaults), patch changes only the options given."""

from __future__ import annotations

import json
from typing import Any

import click

from .cli import Target, echo_json, limit_arg, table

pass_target = click.make_pass_decorator(Target)


def _lim(v: Any) -> str:
    return "-" if v is None else str(v)


@click.group()
def namespaces() -> None:
    """The account-wide limit of a namespace."""


@namespaces.command("list")
@pass_target
def ns_list(target: Target) -> None:
    for name in target.admin().list_namespaces():
        click.echo(name)


@namespaces.command("get")
@click.argument("name", required=False)
@pass_target
def ns_get(target: Target, name: str | None) -> None:
    echo_json(target.admin(name).get_namespace())


@namespaces.command("set")
@click.argument("name", required=False)
@click.option("--max-concurrency", required=True, help="an integer, or 'none' for no limit")
@pass_target
def ns_set(target: Target, name: str | None, max_concurrency: str) -> None:
    echo_json(target.admin(name).set_namespace(max_concurrency=limit_arg(max_concurrency)))


def _fields(given: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in given.items():
        if v is None:
            continue
        if k == "max_concurrency":
            v = limit_arg(v)
        elif k == "members":
            v = [m.strip() for m in v.split(",") if m.strip()]
        elif k == "selector":
            try:
                v = json.loads(v)
            except ValueError:
                raise click.BadParameter("selector must be JSON", param_hint="--selector") from None
        out[k] = v
    return out


def _resource(kind: str, options: list[Any]) -> click.Group:
    """list/get/put/patch/delete for `kind` ('group' or 'function')."""
    grp = click.Group(f"{kind}s", help=f"{kind.capitalize()} settings.")

    def opts(f: Any) -> Any:
        for o in reversed(options):
            f = o(f)
        return f

    @grp.command("list")
    @pass_target
    def list_(target: Target) -> None:
        docs = getattr(target.admin(), f"list_{kind}s")()
        if kind == "group":
            rows = [[d["name"], _lim(d["max_concurrency"]), str(d["reserved"]), d["mode"],
                     ",".join(d["members"])] for d in docs]  # fmt: skip
            table(rows, ["NAME", "MAX", "RESERVED", "MODE", "MEMBERS"])
        else:
            rows = [[d["name"], _lim(d["max_concurrency"]), f"{d['lease_ttl_seconds']:g}",
                     d["on_unavailable"] or "-", d["mode"]] for d in docs]  # fmt: skip
            table(rows, ["NAME", "MAX", "TTL", "ON_UNAVAILABLE", "MODE"])

    @grp.command("get")
    @click.argument("name")
    @pass_target
    def get(target: Target, name: str) -> None:
        doc = getattr(target.admin(), f"get_{kind}")(name)
        if doc is None:
            raise click.ClickException(f"no {kind} {name!r}")
        echo_json(doc)

    @grp.command("put")
    @click.argument("name")
    @opts
    @pass_target
    def put(target: Target, /, name: str, **given: Any) -> None:
        echo_json(getattr(target.admin(), f"put_{kind}")(name, **_fields(given)))

    @grp.command("patch")
    @click.argument("name")
    @opts
    @pass_target
    def patch(target: Target, /, name: str, **given: Any) -> None:
        echo_json(getattr(target.admin(), f"patch_{kind}")(name, **_fields(given)))

    @grp.command("delete")
    @click.argument("name")
    @pass_target
    def delete(target: Target, name: str) -> None:
        if not getattr(target.admin(), f"delete_{kind}")(name):
            raise click.ClickException(f"no {kind} {name!r}")
        click.echo(f"deleted {kind} {name}")

    return grp


MODE = click.option("--mode", type=click.Choice(["enforce", "shadow"]))
MAX = click.option("--max-concurrency", help="an integer, or 'none' for no limit")
groups = _resource("group", [
    MAX,
    click.option("--reserved", type=click.IntRange(min=0)),
    click.option("--members", help="comma-separated function names"),
    click.option("--selector", help='JSON, e.g. {"tags": {"team": "data"}}'),
    MODE,
])  # fmt: skip
functions = _resource("function", [
    MAX,
    click.option("--lease-ttl-seconds", type=click.FloatRange(min=0, min_open=True)),
    click.option("--on-unavailable", type=click.Choice(["open", "closed"])),
    MODE,
])  # fmt: skip


@click.group()
def leases() -> None:
    """Held leases."""


@leases.command("list")
@click.option("--function", help="only this function's leases")
@pass_target
def leases_list(target: Target, function: str | None) -> None:
    rows = [
        [d["lease_id"], d["function"], ",".join(g for g in d["groups"] if g),
         str(d["fence"]), f"{d['expires_at']:.3f}"]
        for d in target.leases(function)
    ]  # fmt: skip
    table(rows, ["LEASE", "FUNCTION", "GROUPS", "FENCE", "EXPIRES_AT"])
