"""Limits files and the config document (`guard.config_file`) without Redis: both shapes,
errors that name their path, refusals of empty and namespace-less files, merge or prune,
and the diff `guard apply` prints."""

from __future__ import annotations

import pytest

from guard import ConflictError, UsageError
from guard.config_file import config_from_doc, config_to_doc, diff, parse, parse_limits
from guard.model import Config, Function, Group

DOC = {
    "max_concurrency": 10,
    "groups": {"api": {"reserved": 2, "members": ["login"]}},
    "functions": {"ingest": {"max_concurrency": 3}},
}


def test_document_roundtrip() -> None:
    cfg = config_from_doc(DOC)
    assert cfg.groups["api"] == Group(reserved=2, members=("login",))
    assert cfg.functions["ingest"] == Function(max_concurrency=3)
    assert config_from_doc(config_to_doc(cfg)) == cfg


def test_both_file_shapes() -> None:
    one = parse({"namespace": "prod", **DOC})
    many = parse({"namespaces": {"prod": DOC, "dev": {"max_concurrency": None}}})
    assert one["prod"] == many["prod"] and many["dev"] == Config()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (None, "file"),
        ({"max_concurrency": 3}, "namespace"),
        ({"namespace": "prod"}, "file"),
        ({"namespaces": {}}, "namespaces"),
        ({"namespace": "prod", "groups": {"etl": {"reserved": -1}}}, "groups.etl.reserved"),
        ({"namespace": "prod", "functions": {"f": {"colour": 1}}}, "functions.f.colour"),
        ({"namespaces": {"prod": {"max_concurrency": "x"}}}, "namespaces.prod.max_concurrency"),
        ({"namespace": "bad name", "max_concurrency": 1}, "namespace.namespace"),
    ],
)
def test_errors_name_their_path(data: object, field: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_limits(data)
    assert ei.value.field == field, ei.value


def test_whole_config_rules_are_conflicts() -> None:
    with pytest.raises(ConflictError):
        config_from_doc({"max_concurrency": 1, "groups": {"a": {"reserved": 2}}})


def test_merge_or_prune_and_diff() -> None:
    old = Config(5, {"old": Group(max_concurrency=1)}, {"keep": Function(max_concurrency=1)})
    limits = parse_limits({"namespace": "prod", "functions": {"new": {"max_concurrency": 2}}})
    merged = limits["prod"].applied_to(old, prune=False)
    assert merged.max_concurrency == 5 and set(merged.functions) == {"keep", "new"}
    assert limits["prod"].unlisted(old) == ["function keep", "group old"]
    pruned = limits["prod"].applied_to(old, prune=True)
    assert diff(old, pruned) == [
        "~ max_concurrency: 5 -> null",
        "- group old",
        "- function keep",
        '+ function new: {"lease_ttl_seconds": 900.0, "max_concurrency": 2, "mode": "enforce", '
        '"on_unavailable": null}',
    ]
    assert diff(old, old) == []
