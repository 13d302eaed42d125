"""`guard sync-aws`: make AWS the source of group membership, and push caps into SQS pollers.

1. Every group with a ``selector`` gets its ``members`` from the Resource Groups Tagging API:
   ``{"tags": {k: v, ...}}`` matches Lambda functions carrying all those tags;
   ``{"stack": name}`` matches the ``aws:cloudformation:stack-name`` tag CloudFormation puts on
   a stack's resources. Groups without a selector are left alone.
2. With `push_sqs_max`, each configured function's ``max_concurrency`` is written into the
   ``ScalingConfig.MaximumConcurrency`` of its SQS event source mappings, so the poller stops
   invoking at the cap instead of invoking and being throttled. AWS accepts 2..1000 there:
   a max outside that range is skipped with a message (guard still enforces it); a function
   whose max is null (unlimited) has the mapping's cap removed — guard is the source of truth
   for every function it configures.

`run_sync` is one pass and returns a `SyncReport`; `--dry-run` computes the same report and
writes nothing. Errors of one group or mapping are reported and do not stop the others."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ..admin_api import AdminAPI
from . import _clients

log = logging.getLogger("guard.aws")

STACK_TAG = "aws:cloudformation:stack-name"
SQS_MAX_RANGE = (2, 1000)


@dataclass
class GroupChange:
    group: str
    selector: dict[str, Any]
    before: list[str]
    after: list[str]
    applied: bool = False
    error: str | None = None

    @property
    def added(self) -> list[str]:
        return sorted(set(self.after) - set(self.before))

    @property
    def removed(self) -> list[str]:
        return sorted(set(self.before) - set(self.after))

    @property
    def changed(self) -> bool:
        return set(self.after) != set(self.before)


@dataclass
class MappingChange:
    function: str
    uuid: str
    source: str
    before: int | None
    after: int | None
    action: str  # "set", "remove", "unchanged" or "skip"
    message: str = ""
    applied: bool = False
    error: str | None = None


@dataclass
class SyncReport:
    dry_run: bool
    groups: list[GroupChange] = field(default_factory=list)
    mappings: list[MappingChange] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        out = [f"group {c.group}: {c.error}" for c in self.groups if c.error]
        out += [f"mapping {m.uuid} ({m.function}): {m.error}" for m in self.mappings if m.error]
        return out

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.groups) or any(
            m.action in ("set", "remove") for m in self.mappings
        )

    def lines(self) -> list[str]:
        """A human-readable diff."""
        verb = "would " if self.dry_run else ""
        out: list[str] = []
        for c in self.groups:
            if c.error:
                out.append(f"group {c.group}: ERROR {c.error}")
            elif not c.changed:
                out.append(f"group {c.group}: {len(c.after)} member(s), unchanged")
            else:
                out.append(f"group {c.group}: {verb}change members ({len(c.after)} total)")
                out += [f"  + {n}" for n in c.added] + [f"  - {n}" for n in c.removed]
        for m in self.mappings:
            head = f"sqs mapping {m.uuid} ({m.function} <- {m.source.rsplit(':', 1)[-1]})"
            if m.error:
                out.append(f"{head}: ERROR {m.error}")
            elif m.action == "set":
                out.append(f"{head}: {verb}set MaximumConcurrency {m.before} -> {m.after}")
            elif m.action == "remove":
                out.append(f"{head}: {verb}remove MaximumConcurrency {m.before}")
            elif m.action == "skip":
                out.append(f"{head}: skipped: {m.message}")
            else:
                out.append(f"{head}: MaximumConcurrency {m.before}, unchanged")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "groups": [
                {
                    "group": c.group,
                    "selector": c.selector,
                    "members": c.after,
                    "added": c.added,
                    "removed": c.removed,
                    "applied": c.applied,
                    "error": c.error,
                }
                for c in self.groups
            ],
            "mappings": [m.__dict__.copy() for m in self.mappings],
            "errors": self.errors,
        }


def function_name_from_arn(arn: str) -> str | None:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` → name."""
    parts = arn.split(":")
    if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
        return parts[6]
    return None


def tag_filters(selector: dict[str, Any]) -> list[dict[str, Any]]:
    if "stack" in selector:
        return [{"Key": STACK_TAG, "Values": [selector["stack"]]}]
    return [{"Key": k, "Values": [v]} for k, v in sorted(selector["tags"].items())]


def resolve_selector(tagging: Any, selector: dict[str, Any]) -> list[str]:
    """Names of the Lambda functions matching `selector` (all pages; tag filters AND)."""
    names: set[str] = set()
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=tag_filters(selector), ResourceTypeFilters=["lambda:function"]
    )
    for page in pages:
        for res in page.get("ResourceTagMappingList", []):
            name = function_name_from_arn(res.get("ResourceARN", ""))
            if name:
                names.add(name)
    return sorted(names)


def plan_mapping(function: str, mapping: dict[str, Any], max_: int | None) -> MappingChange:
    """What pushing `max_` into one SQS event source mapping means."""
    before = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
    change = MappingChange(
        function, mapping["UUID"], mapping.get("EventSourceArn", ""), before, max_, "unchanged"
    )
    lo, hi = SQS_MAX_RANGE
    if max_ is None:
        if before is not None:
            change.action = "remove"
    elif not lo <= max_ <= hi:
        change.action, change.after = "skip", before
        change.message = (
            f"max_concurrency {max_} is outside the {lo}..{hi} that SQS MaximumConcurrency "
            f"accepts; left at {before}, guard still enforces {max_}"
        )
    elif before != max_:
        change.action = "set"
    return change


def sqs_mappings(lam: Any, function: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in lam.get_paginator("list_event_source_mappings").paginate(FunctionName=function):
        for m in page.get("EventSourceMappings", []):
            if str(m.get("EventSourceArn", "")).startswith("arn:") and ":sqs:" in m.get(
                "EventSourceArn", ""
            ):
                out.append(m)
    return out


def run_sync(
    admin: AdminAPI,
    session_or_clients: Any = None,
    *,
    dry_run: bool = False,
    push_sqs_max: bool = False,
) -> SyncReport:
    """One sync pass over `admin`'s namespace (a `guard.admin.Admin`).

    `session_or_clients`: a boto3 Session, a mapping ``{"resourcegroupstaggingapi": c,
    "lambda": c}`` of ready clients, or None for a default session (region and credentials
    from the environment; ``AWS_ENDPOINT_URL`` honoured)."""
    report = SyncReport(dry_run=dry_run)
    groups = [g for g in admin.list_groups() if g.get("selector")]
    if groups:
        tagging = _clients.client("resourcegroupstaggingapi", session_or_clients)
    for g in groups:
        change = GroupChange(g["name"], g["selector"], list(g["members"]), list(g["members"]))
        report.groups.append(change)
        try:
            change.after = resolve_selector(tagging, g["selector"])
            if change.changed and not dry_run:
                admin.patch_group(g["name"], members=change.after)
                change.applied = True
        except Exception as exc:  # one group's failure must not stop the rest
            change.error = f"{type(exc).__name__}: {exc}"
            log.warning("sync-aws: group %s: %s", g["name"], exc)
    if push_sqs_max:
        _push_sqs_max(admin, session_or_clients, report)
    return report


def _push_sqs_max(admin: AdminAPI, source: Any, report: SyncReport) -> None:
    functions = admin.list_functions()
    if not functions:
        return
    lam = _clients.client("lambda", source)
    for f in functions:
        try:
            mappings = sqs_mappings(lam, f["name"])
        except Exception as exc:
            if type(exc).__name__ == "ResourceNotFoundException":
                continue  # configured in guard, not deployed here
            report.mappings.append(MappingChange(f["name"], "-", "", None, None, "skip"))
            report.mappings[-1].error = f"{type(exc).__name__}: {exc}"
            continue
        for m in mappings:
            change = plan_mapping(f["name"], m, f["max_concurrency"])
            report.mappings.append(change)
            if report.dry_run or change.action not in ("set", "remove"):
                continue
            scaling = {} if change.after is None else {"MaximumConcurrency": change.after}
            try:
                lam.update_event_source_mapping(UUID=change.uuid, ScalingConfig=scaling)
                change.applied = True
            except Exception as exc:
                change.error = f"{type(exc).__name__}: {exc}"
                log.warning("sync-aws: mapping %s: %s", change.uuid, exc)


def sync_forever(
    admin: AdminAPI,
    every: float,
    stop: threading.Event,
    session_or_clients: Any = None,
    **kwargs: Any,
) -> None:
    """Run `run_sync` every `every` seconds until `stop` is set (e.g. from a daemon thread in
    ``guard serve --sync-aws-every``). A failed pass is logged; the next one runs on time."""
    while not stop.is_set():
        try:
            report = run_sync(admin, session_or_clients, **kwargs)
            for line in report.lines():
                log.info("sync-aws: %s", line)
        except Exception:
            log.exception("sync-aws pass failed")
        stop.wait(every)
