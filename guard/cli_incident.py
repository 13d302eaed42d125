"""Incident commands: ``guard override``, ``pause``, ``resume``, ``overrides``, ``audit``.

An override caps a function or group for a while without touching the limits file (which
``guard apply`` and ``guard serve --config`` keep re-applying); it ends by itself at its
deadline (server time). ``pause`` is an override to 0; ``resume`` ends one early."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click

from .cli_common import Target, pass_target, table
from .overrides import AUDIT_MAX_LIMIT, MAX_OVERRIDE_SECONDS

KIND = click.Choice(["function", "group"])
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` -> seconds."""
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"expected a duration like 90s, 15m, 2h or 1d (got {value!r})")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _left(seconds: float) -> str:
    s = round(seconds)
    h, m = divmod(s, 3600)
    m, sec = divmod(m, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{sec}s"


def _said(doc: dict[str, Any]) -> str:
    why = f" ({doc['reason']})" if doc.get("reason") else ""
    left = _left(doc["seconds_left"])
    return f"{doc['kind']} {doc['name']}: max_concurrency {doc['max_concurrency']} for {left}{why}"


@click.command()
@click.argument("kind", type=KIND)
@click.argument("name")
@click.option(
    "--max", "max_concurrency", type=int, required=True, help="the temporary max (0 pauses)"
)
@click.option(
    "--for",
    "duration",
    default="1h",
    show_default=True,
    help=f"how long: 90s, 15m, 2h, 1d (at most {MAX_OVERRIDE_SECONDS // 86400}d)",
)
@click.option("--reason", default="", help="why (shown in the console and the audit log)")
@pass_target
def override(
    target: Target, kind: str, name: str, max_concurrency: int, duration: str, reason: str
) -> None:
    """Cap a function or group for a while (the limits file is left alone)."""
    doc = target.admin().override(kind, name, max_concurrency, parse_duration(duration), reason)
    click.echo("override set: " + _said(doc))


@click.command()
@click.argument("kind", type=KIND)
@click.argument("name")
@click.option("--for", "duration", default="1h", show_default=True, help="how long: 15m, 2h, 1d")
@click.option(
    "--reason",
    default="paused",
    show_default=True,
    help="why (shown in the console and the audit log)",
)
@pass_target
def pause(target: Target, kind: str, name: str, duration: str, reason: str) -> None:
    """Admit nothing for a function or group for a while (an override to 0)."""
    doc = target.admin().override(kind, name, 0, parse_duration(duration), reason)
    click.echo("paused: " + _said(doc))


@click.command()
@click.argument("kind", type=KIND)
@click.argument("name")
@pass_target
def resume(target: Target, kind: str, name: str) -> None:
    """End a pause or override now (its settings apply again)."""
    if target.admin().clear_override(kind, name):
        click.echo(f"resumed: {kind} {name} is back to its settings")
    else:
        click.echo(f"no override of {kind} {name} was in force")


@click.command("overrides")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@pass_target
def list_overrides(target: Target, as_json: bool) -> None:
    """Overrides in force, with the time each has left."""
    docs = target.admin().overrides()
    if as_json:
        click.echo(json.dumps(docs, indent=2, sort_keys=True))
        return
    rows = [
        [
            o["kind"],
            o["name"],
            str(o["max_concurrency"]),
            _left(o["seconds_left"]),
            o["actor"],
            o["reason"],
        ]
        for o in docs
    ]
    table(rows, ["KIND", "NAME", "MAX", "LEFT", "BY", "REASON"])


@click.command()
@click.option(
    "--limit",
    type=click.IntRange(1, AUDIT_MAX_LIMIT),
    default=20,
    show_default=True,
    help="how many entries, newest first",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON (with before and after)")
@pass_target
def audit(target: Target, limit: int, as_json: bool) -> None:
    """The latest config writes of the namespace: when, who, what."""
    entries = target.admin().audit(limit=limit)
    if as_json:
        click.echo(json.dumps(entries, indent=2, sort_keys=True))
        return
    rows = []
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["time"]))
        change = json.dumps(e["after"], sort_keys=True)
        short = change if len(change) <= 80 else change[:77] + "..."
        rows.append([when, e["actor"], e["action"], e["target"], short])
    table(rows, ["TIME", "ACTOR", "ACTION", "TARGET", "AFTER"])


COMMANDS = (override, pause, resume, list_overrides, audit)
