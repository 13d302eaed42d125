"""Limits as code: a YAML file parsed into `guard.model.Config` per namespace.

Two shapes (see deploy/limits.example.yaml): one namespace at the top level
(``namespace``, ``max_concurrency``, ``groups``, ``functions``), or several under
``namespaces: {name: {...}}``. Every error names its path in the file, e.g.
``groups.etl.reserved``, and nothing is applied from a file with any error. The same
document shape (`config_from_doc` / `config_to_doc`) is the body of ``…/{ns}/config``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .errors import ConflictError, UsageError
from .model import Config, Function, Group, check_limit, check_name, check_namespace

SECTIONS = ("max_concurrency", "groups", "functions")


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
    cfg = Config(limit, groups, functions)
    try:
        cfg.check()
    except ConflictError as exc:
        raise ConflictError(f"{pre}{exc}", pre + (exc.field or "")) from None
    return cfg


def config_to_doc(cfg: Config) -> dict[str, Any]:
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k != "name"}

    return {
        "max_concurrency": cfg.max_concurrency,
        "groups": {n: strip(cfg.groups[n].doc(n)) for n in sorted(cfg.groups)},
        "functions": {n: strip(cfg.functions[n].doc(n)) for n in sorted(cfg.functions)},
    }


def parse(data: Any, default_namespace: str | None = None) -> dict[str, Config]:
    """A loaded YAML document → {namespace: Config}."""
    data = _mapping(data, "file")
    if "namespaces" in data:
        extra = [k for k in data if k != "namespaces"]
        if extra:
            raise UsageError(f"{extra[0]}: not allowed beside 'namespaces'", extra[0])
        out = {}
        for ns, doc in _mapping(data["namespaces"], "namespaces").items():
            try:
                check_namespace(ns)
            except UsageError as exc:
                raise _at("namespaces", exc) from None
            out[ns] = config_from_doc(doc, f"namespaces.{ns}")
        return out
    rest = dict(data)
    ns = (
        rest.pop("namespace", None)
        or default_namespace
        or os.environ.get("GUARD_NAMESPACE", "default")
    )
    try:
        check_namespace(ns)
    except UsageError as exc:
        raise _at("namespace", exc) from None
    return {ns: config_from_doc(rest)}


def load(path: str, default_namespace: str | None = None) -> dict[str, Config]:
    import yaml  # extra "server"; not needed by the SDK

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}", "file") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}", "file") from exc
    return parse(data, default_namespace)


def _show(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def diff(old: Config, new: Config) -> list[str]:
    """Human-readable changes from `old` to `new` (empty when equal)."""
    a, b = config_to_doc(old), config_to_doc(new)
    lines = []
    if a["max_concurrency"] != b["max_concurrency"]:
        lines.append(f"~ max_concurrency: {_show(a['max_concurrency'])} -> "
                     f"{_show(b['max_concurrency'])}")  # fmt: skip
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
