"""The ``guard`` command: serve, apply, usage and admin of namespaces, groups, functions.

Admin commands talk to the HTTP API when ``GUARD_URL`` (+ ``GUARD_TOKEN``) is set, else
straight to Redis with ``GUARD_REDIS_URL``, through one typed interface
(`guard.admin_api.AdminAPI`; `guard.cli_common.Target`). Resource commands live in
`guard.cli_admin`. To add a command (e.g. ``sync-aws``), define it in its own module
and register it with ``main.add_command(...)`` at the bottom of this file."""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile
from dataclasses import replace
from typing import Any

import click

from . import __version__
from .cli_admin import functions, groups, leases, namespaces
from .cli_common import JSON, Target, echo_json, pass_target, table
from .cli_incident import COMMANDS as INCIDENT_COMMANDS
from .demo import demo
from .errors import GuardError
from .settings import Settings

# AWS errors a user fixes in their environment, with the hint botocore does not give
AWS_HINTS = {
    "NoRegionError": " (set AWS_REGION or AWS_DEFAULT_REGION, or a region in the AWS profile)",
    "NoCredentialsError": " (set AWS credentials: environment, profile or instance role)",
}


class GuardGroup(click.Group):
    """Turns GuardErrors (and AWS client errors) into a one-line message and exit status 1
    (2 for bad usage), not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GuardError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2 if isinstance(exc, ValueError) else 1)
        except Exception as exc:
            if not type(exc).__module__.startswith(("botocore.", "boto3.")):
                raise
            hint = AWS_HINTS.get(type(exc).__name__, "")
            click.echo(f"error: AWS: {exc}{hint}", err=True)
            ctx.exit(1)


def listen_error(bind: str) -> str | None:
    """Why ``guard serve`` cannot listen on ``HOST:PORT``, or None. Checked before anything
    starts: gunicorn itself retries a busy port for seconds and then logs a page."""
    host, sep, port = bind.rpartition(":")
    if not sep or bind.startswith(("unix:", "fd://")) or not port.isdigit():
        return None  # gunicorn's other bind forms: left to gunicorn
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host.strip("[]") or "0.0.0.0", int(port), type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            s.bind(addr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"cannot listen on {bind}: address already in use"
        return f"cannot listen on {bind}: {exc.strerror or exc}"
    return None


@click.group(cls=GuardGroup)
@click.version_option(
    __version__, prog_name="guard", message="%(prog)s %(version)s (distribution guard-concurrency)"
)
@click.option(
    "-n",
    "--namespace",
    envvar="GUARD_NAMESPACE",
    default="default",
    show_default=True,
    help="namespace the commands act on (GUARD_NAMESPACE)",
)
@click.option("--url", envvar="GUARD_URL", help="guard HTTP API (GUARD_URL)")
@click.option("--token", envvar="GUARD_TOKEN", help="bearer token (GUARD_TOKEN)")
@click.option("--redis-url", envvar="GUARD_REDIS_URL", help="Redis (GUARD_REDIS_URL)")
@click.pass_context
def main(
    ctx: click.Context, namespace: str, url: str | None, token: str | None, redis_url: str | None
) -> None:
    """guard: concurrency limits for serverless functions."""
    ctx.obj = Target(namespace, url, token, redis_url)
    ctx.call_on_close(ctx.obj.close)


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="HOST:PORT")
@click.option("--workers", type=click.IntRange(min=1), help="gunicorn workers [GUARD_WORKERS or 2]")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="limits file to keep applied; its namespaces become exactly the file (it prunes) "
    "[GUARD_CONFIG]",
)
@click.option(
    "--sync-aws-every",
    type=float,
    default=None,
    metavar="SECONDS",
    help="run sync-aws for every namespace this often (needs the aws extra)",
)
def serve(
    bind: str, workers: int | None, config_path: str | None, sync_aws_every: float | None
) -> None:
    """Serve the HTTP API (gunicorn). Without GUARD_REDIS_URL: an embedded store.

    Its settings are read from the environment once (`guard.settings`); the gunicorn workers
    get the same `Settings`."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # before prometheus_client is imported
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="guard-metrics-")
    from .server import auth, embedded
    from .server import serve as srv

    try:
        st = Settings.from_env()
    except GuardError as exc:
        raise click.UsageError(str(exc)) from exc
    workers = workers or st.workers
    config_path = config_path or st.config_path
    if config_path and not os.path.isfile(config_path):
        raise click.UsageError(f"GUARD_CONFIG: no such file: {config_path!r}")
    srv.prepare_multiproc_dir()
    admin, client = list(st.admin_tokens), list(st.client_tokens)
    try:
        file_tokens = auth.load_tokens([], [], st.tokens_file)
    except GuardError as exc:
        raise click.UsageError(str(exc)) from exc
    refusal = auth.check_bind(bind, admin, client, len(file_tokens))
    if refusal:
        raise click.UsageError(refusal)
    busy = listen_error(bind)
    if busy:
        click.echo(f"error: {busy}", err=True)
        sys.exit(1)
    if not admin and not client and not file_tokens:
        srv.say(
            "!!! OPEN MODE: no GUARD_ADMIN_TOKENS / GUARD_CLIENT_TOKENS — anyone who can "
            f"reach {bind} may change limits. Loopback only. !!!"
        )
    store = None
    if not st.redis_url:
        store = embedded.start()
        st = replace(st, redis_url=store.url)
        srv.say(f"!!! no GUARD_REDIS_URL: using {store.describe()}; limits vanish on exit !!!")
    redis_url = st.redis_url
    assert redis_url  # set above when the environment had none
    keeper: srv.ConfigKeeper | None = None
    if config_path:
        from .config_file import load
        from .store import RedisStore

        configs = load(config_path)
        keeper = srv.ConfigKeeper(RedisStore.from_url(redis_url, timeout=2.0), configs)
        for ns in configs:
            keeper.apply(ns)
        srv.say(f"applied {config_path} to namespace(s) {', '.join(sorted(configs))}")
        keeper.start(st.config_check_seconds)
    syncing = None
    if sync_aws_every:
        syncing = srv.start_aws_sync(redis_url, sync_aws_every)
        srv.say(f"sync-aws every {sync_aws_every:g}s for every namespace in the store")
    opts = srv.options(bind, workers, st)
    # said by gunicorn's master once its sockets are bound, not before
    opts["when_ready"] = lambda _server: srv.say(
        f"serving on http://{bind} with {workers} worker(s)"
    )

    def on_exit() -> None:
        if syncing is not None:
            syncing.set()
        if keeper is not None:
            keeper.stop()
        if store is not None:
            store.stop()

    srv.GuardApplication(opts, on_exit, st).run()


@main.command()
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="limits file (YAML) naming its namespace(s)",
)
@click.option("--dry-run", is_flag=True, help="show the diff, change nothing")
@click.option(
    "--prune",
    is_flag=True,
    help="also remove the groups and functions the file does not list, and unset a "
    "max_concurrency it does not set: the namespace becomes exactly the file",
)
@pass_target
def apply(target: Target, path: str, dry_run: bool, prune: bool) -> None:
    """Make the store hold what a limits file says (each namespace in one atomic write).

    Groups and functions the file lists are written whole; the ones it does not list are kept
    unless --prune is given (the output names them either way). An empty file, or one that
    names no namespace, is an error and changes nothing."""
    from .config_file import diff, load_limits

    plans = []
    for ns, limits in sorted(load_limits(path).items()):
        old = target.read_config(ns)
        new = limits.applied_to(old, prune)
        new.check()  # kept groups count too; every namespace is checked before any is written
        plans.append((ns, new, diff(old, new), limits.unlisted(old)))
    for ns, new, changes, unlisted in plans:
        click.echo(
            f"namespace {ns}: " + ("no changes" if not changes else f"{len(changes)} change(s)")
        )
        for line in changes:
            click.echo(f"  {line}")
        if unlisted and not prune:
            click.echo(f"  not in the file, kept (--prune would remove: {', '.join(unlisted)})")
        if changes and not dry_run:
            target.write_config(ns, new)
    if dry_run:
        click.echo("dry run: nothing was changed")


@main.command()
@JSON
@pass_target
def usage(target: Target, as_json: bool) -> None:
    """Live usage: in use against limit at every level."""
    u = target.admin().usage()
    if as_json:
        echo_json(u)
        return

    def lim(v: Any) -> str:
        return "-" if v is None else str(v)

    rows = [
        [
            "account",
            target.namespace,
            f"{u['account']['in_use']} / {lim(u['account']['max_concurrency'])}",
            "",
        ]
    ]
    for n, v in u["groups"].items():
        rows.append(
            ["group", n, f"{v['in_use']} / {lim(v['max_concurrency'])}", str(v["reserved"])]
        )
    for n, v in u["functions"].items():
        rows.append(["function", n, f"{v['in_use']} / {lim(v['max_concurrency'])}", ""])
    table(rows, ["LEVEL", "NAME", "IN USE / LIMIT", "RESERVED"])


from .aws.cli import sync_aws  # noqa: E402  (boto3 is imported only when it runs)

for _cmd in (namespaces, groups, functions, leases, sync_aws, *INCIDENT_COMMANDS, demo):
    main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
