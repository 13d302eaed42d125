"""Limits as code: a YAML file parsed into `guard.model.Config` per namespace.

Two shapes (see deploy/limits.example.yaml): one namespace at the top level
(``namespace``, ``max_concurrency``, ``groups``, ``functions``), or several under
``namespaces: {name: {...}}``. Every error names its path in the file, e.g.
``groups.etl.reserved``, and nothing is applied from a file with any error. The same
document shape (`config_from_doc` / `config_to_doc`) is the body of ``…/{ns}/config``.

A file must name its namespaces and give each at least one section: an empty file (or one
of comments only) is an error, never "remove everything" — and a file that names no
namespace is not silently applied to whatever ``GUARD_NAMESPACE`` happens to be. What a
file does not list is kept unless the caller prunes (`Limits.applied_to`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConflictError, UsageError
from .model import Config, Function, Group, check_limit, check_name, check_namespace

SECTIONS = ("max_concurrency", "rate_per_second", "rate_burst", "groups", "functions")


def _at(path: str, exc: UsageError | ConflictError) -> UsageError:
    field = f"{path}.{exc.field}" if exc.field else path
    return UsageError(f"{field}: {exc}", field)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UsageError(f"{path}: must be a mapping (got {type(value).__name__})", path)
    return value


def config_from_doc(doc: Any, path: str = "") -> Config:
    """``{"max_concurrency", "groups": {name: fields}, "functions": {name: fields}}`` →
    a checked `Config`. `path` prefixes field names in errors."""
    pre = f"{path}." if path else ""
    doc = _mapping(doc, path or "document")
    for k in doc:
        if k not in SECTIONS:
            raise UsageError(f"{pre}{k}: unknown field (allowed: {', '.join(SECTIONS)})", pre + k)
    try:
        limit = check_limit(doc.get("max_concurrency"), "max_concurrency")
    except UsageError as exc:
        raise _at(path or "max_concurrency", exc) if path else exc from None
    groups: dict[str, Group] = {}
    for name, fields in _mapping(doc.get("groups"), pre + "groups").items():
        where = f"{pre}groups.{name}"
        try:
            check_name(name, "group")
            groups[name] = Group.build(**_mapping(fields, where))
        except UsageError as exc:
            raise _at(where, exc) from None
    functions: dict[str, Function] = {}
    for name, fields in _mapping(doc.get("functions"), pre + "functions").items():
        where = f"{pre}functions.{name}"
        try:
            check_name(name, "function")
            functions[name] = Function.build(**_mapping(fields, where))
        except UsageError as exc:
            raise _at(where, exc) from None
    cfg = Config(limit, groups, functions, doc.get("rate_per_second"), doc.get("rate_burst"))
    try:
        cfg.check()
    except UsageError as exc:
        raise _at(path, exc) if path else exc from None
    except ConflictError as exc:
        raise ConflictError(f"{pre}{exc}", pre + (exc.field or "")) from None
    return cfg


def config_to_doc(cfg: Config) -> dict[str, Any]:
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k != "name"}

    return {
        **cfg.ns_doc(),
        "groups": {n: strip(cfg.groups[n].doc(n)) for n in sorted(cfg.groups)},
        "functions": {n: strip(cfg.functions[n].doc(n)) for n in sorted(cfg.functions)},
    }


@dataclass(frozen=True)
class Limits:
    """One namespace's part of a limits file: its settings, and whether it sets the
    namespace's ``max_concurrency`` (a file that leaves it out keeps the stored one)."""

    config: Config
    sets_max: bool

    def applied_to(self, old: Config, prune: bool) -> Config:
        """What the namespace holds after applying the file. Listed groups and functions are
        written whole; with `prune` the namespace becomes exactly the file, else what the
        file does not list is kept. The caller checks the result as a whole (`Config.check`)."""
        if prune:
            return self.config
        new = self.config
        return Config(
            new.max_concurrency if self.sets_max else old.max_concurrency,
            {**old.groups, **new.groups},
            {**old.functions, **new.functions},
        )

    def unlisted(self, old: Config) -> list[str]:
        """What `old` holds that the file does not list (what a prune removes)."""
        return [
            f"function {n}" for n in sorted(set(old.functions) - set(self.config.functions))
        ] + [f"group {n}" for n in sorted(set(old.groups) - set(self.config.groups))]


def _limits(doc: Any, path: str) -> Limits:
    where = path or "file"
    body = _mapping(doc, where)
    if not any(k in body for k in SECTIONS):
        raise UsageError(
            f"{where}: lists nothing (none of {', '.join(SECTIONS)}); an empty file is refused "
            "rather than read as 'remove every limit'",
            where,
        )
    return Limits(config_from_doc(body, path), "max_concurrency" in body)


def parse_limits(data: Any) -> dict[str, Limits]:
    """A loaded YAML document → {namespace: Limits}. Empty, namespace-less and section-less
    documents are errors."""
    if data is None:
        raise UsageError("file: is empty (or only comments); nothing to apply", "file")
    data = _mapping(data, "file")
    if "namespaces" in data:
        extra = [k for k in data if k != "namespaces"]
        if extra:
            raise UsageError(f"{extra[0]}: not allowed beside 'namespaces'", extra[0])
        spaces = _mapping(data["namespaces"], "namespaces")
        if not spaces:
            raise UsageError("namespaces: is empty; nothing to apply", "namespaces")
        out = {}
        for ns, doc in spaces.items():
            try:
                check_namespace(ns)
            except UsageError as exc:
                raise _at("namespaces", exc) from None
            out[ns] = _limits(doc, f"namespaces.{ns}")
        return out
    if "namespace" not in data:
        raise UsageError(
            "namespace: missing; a limits file names the namespace it is for "
            "('namespace: NAME', or 'namespaces: {NAME: ...}')",
            "namespace",
        )
    rest = dict(data)
    ns = rest.pop("namespace")
    try:
        check_namespace(ns)
    except UsageError as exc:
        raise _at("namespace", exc) from None
    return {ns: _limits(rest, "")}


def parse(data: Any) -> dict[str, Config]:
    """A loaded YAML document → {namespace: Config}: each namespace exactly as the file says
    (what `guard serve --config` keeps applied)."""
    return {ns: lim.config for ns, lim in parse_limits(data).items()}


def read(path: str) -> Any:
    import yaml  # extra "server"; not needed by the SDK

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}", "file") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}", "file") from exc


def load(path: str) -> dict[str, Config]:
    return parse(read(path))


def load_limits(path: str) -> dict[str, Limits]:
    return parse_limits(read(path))


def _show(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def diff(old: Config, new: Config) -> list[str]:
    """Human-readable changes from `old` to `new` (empty when equal)."""
    a, b = config_to_doc(old), config_to_doc(new)
    lines = []
    if a["max_concurrency"] != b["max_concurrency"]:
        lines.append(
            f"~ max_concurrency: {_show(a['max_concurrency'])} -> {_show(b['max_concurrency'])}"
        )
    for kind in ("groups", "functions"):
        what = kind[:-1]
        for name in sorted(set(a[kind]) | set(b[kind])):
            x, y = a[kind].get(name), b[kind].get(name)
            if x is None:
                lines.append(f"+ {what} {name}: {_show(y)}")
            elif y is None:
                lines.append(f"- {what} {name}")
            elif x != y:
                changed = ", ".join(
                    f"{k} {_show(x.get(k))} -> {_show(y.get(k))}"
                    for k in sorted(set(x) | set(y))
                    if x.get(k) != y.get(k)
                )
                lines.append(f"~ {what} {name}: {changed}")
    return lines
