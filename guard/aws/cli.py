"""The ``guard sync-aws`` command. The main CLI attaches it: ``main.add_command(sync_aws)``."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from ..admin_api import AdminAPI
from ..cli_common import Target
from .sync import run_sync


def _admin(redis_url: str | None, namespace: str) -> AdminAPI:
    from ..admin import Admin, default_actor
    from ..store import RedisStore

    url = redis_url or os.environ.get("GUARD_REDIS_URL")
    if not url:
        raise click.UsageError("set GUARD_REDIS_URL or pass --redis-url")
    actor = f"sync-aws ({default_actor()})"  # the audit log's actor
    return Admin(RedisStore.from_url(url, timeout=5.0), namespace, actor)


@click.command("sync-aws")
@click.option(
    "--namespace",
    "-n",
    default=None,
    help="Namespace to sync [the main command's -n, $GUARD_NAMESPACE or default].",
)
@click.option("--redis-url", default=None, help="Store URL (default: $GUARD_REDIS_URL).")
@click.option("--dry-run", is_flag=True, help="Show the diff; change nothing.")
@click.option(
    "--push-sqs-max",
    is_flag=True,
    help="Also write each configured function's max_concurrency into its SQS event source "
    "mappings' ScalingConfig.MaximumConcurrency.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def sync_aws(
    ctx: click.Context,
    namespace: str | None,
    redis_url: str | None,
    dry_run: bool,
    push_sqs_max: bool,
    as_json: bool,
) -> None:
    """Resolve group selectors (tags, CloudFormation stacks) into members from AWS.

    AWS credentials and region come from the usual environment; AWS_ENDPOINT_URL is honoured.
    Exits 1 when any group or mapping failed."""
    # Under `guard`, ctx.obj is the CLI's target (HTTP API or Redis, like every command);
    # a caller (or a test) may instead hand over {"admin": ..., "aws": ...}.
    obj: dict[str, Any] = ctx.obj if isinstance(ctx.obj, dict) else {}
    admin: AdminAPI | None = obj.get("admin")
    if admin is None and isinstance(ctx.obj, Target) and not redis_url:
        admin = ctx.obj.admin(namespace)
    if admin is None:
        admin = _admin(redis_url, namespace or os.environ.get("GUARD_NAMESPACE", "default"))
    report = run_sync(admin, obj.get("aws"), dry_run=dry_run, push_sqs_max=push_sqs_max)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines() or ["no group has a selector; nothing to sync"]:
            click.echo(line)
        if dry_run:
            click.echo("dry run: nothing was changed")
    if report.errors:
        for e in report.errors:
            click.echo(f"error: {e}", err=True)
        ctx.exit(1)
