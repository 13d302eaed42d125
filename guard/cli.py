"""The ``guard`` command: serve, apply, usage and admin of namespaces, groups, functions.

Admin commands talk to the HTTP API when ``GUARD_URL`` (+ ``GUARD_TOKEN``) is set — what an
operator's laptop can reach — else straight to Redis with ``GUARD_REDIS_URL``. Both go through
one interface (`guard.admin.Admin` or `guard.http_backend.HttpAdmin`, same methods), so every
command works either way. To add a command (e.g. ``sync-aws``), define it in its own module
and register it with ``main.add_command(...)`` at the bottom of this file."""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .errors import GuardError
from .model import Config

ENV_HELP = "GUARD_URL+GUARD_TOKEN (HTTP API) or GUARD_REDIS_URL (Redis)"


class Target:
    """Where admin commands go; built lazily so ``guard serve`` never needs it."""

    def __init__(self, namespace: str, url: str | None, token: str | None, redis_url: str | None):
        self.namespace, self.url, self.token, self.redis_url = namespace, url, token, redis_url
        self._admin: Any = None

    def admin(self, namespace: str | None = None) -> Any:
        if self._admin is None:
            if self.url:
                from .http_backend import HttpAdmin, HttpBackend

                self._admin = HttpAdmin(HttpBackend(self.url, self.token, 10.0), self.namespace)
            elif self.redis_url:
                from .admin import Admin
                from .store import RedisStore

                self._admin = Admin(
                    RedisStore.from_url(self.redis_url, timeout=5.0), self.namespace
                )
            else:
                raise click.UsageError(f"set {ENV_HELP} (or --url / --redis-url)")
        return self._admin if namespace is None else self._admin.for_namespace(namespace)

    def close(self) -> None:
        if self._admin is not None:
            conn = getattr(self._admin, "backend", None) or self._admin.store
            conn.close()
            self._admin = None

    def read_config(self, ns: str) -> Config:
        a = self.admin(ns)
        if hasattr(a, "config_doc"):
            from .config_file import config_from_doc

            return config_from_doc(a.config_doc())
        cfg: Config = a.config()
        return cfg

    def write_config(self, ns: str, cfg: Config) -> None:
        a = self.admin(ns)
        if hasattr(a, "replace_config_doc"):
            from .config_file import config_to_doc

            a.replace_config_doc(config_to_doc(cfg))
        else:
            a.replace_config(cfg)

    def release(self, lease_id: bytes) -> bool:
        a = self.admin()
        conn = getattr(a, "backend", None) or a.store
        return bool(conn.release(a.namespace, lease_id))

    def leases(self, function: str | None) -> list[dict[str, Any]]:
        a = self.admin()
        if hasattr(a, "leases"):
            return list(a.leases(function))
        return [info.doc() for info in a.store.leases(a.namespace, function)]


JSON: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--json", "as_json", is_flag=True, help="print JSON (the HTTP API's body)"
)


def echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def limit_arg(value: str | None) -> int | None:
    """``none``/``unlimited`` → None (no limit); else an integer."""
    if value is None or value.lower() in ("none", "null", "unlimited"):
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected an integer or 'none', got {value!r}") from None


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
@click.version_option(__version__, prog_name="guard",
                      message="%(prog)s %(version)s (distribution guard-concurrency)")  # fmt: skip
@click.option("-n", "--namespace", envvar="GUARD_NAMESPACE", default="default", show_default=True,
              help="namespace the commands act on (GUARD_NAMESPACE)")  # fmt: skip
@click.option("--url", envvar="GUARD_URL", help="guard HTTP API (GUARD_URL)")
@click.option("--token", envvar="GUARD_TOKEN", help="bearer token (GUARD_TOKEN)")
@click.option("--redis-url", envvar="GUARD_REDIS_URL", help="Redis (GUARD_REDIS_URL)")
@click.pass_context
def main(ctx: click.Context, namespace: str, url: str | None, token: str | None,
         redis_url: str | None) -> None:  # fmt: skip
    """guard: concurrency limits for serverless functions."""
    ctx.obj = Target(namespace, url, token, redis_url)
    ctx.call_on_close(ctx.obj.close)


pass_target = click.make_pass_decorator(Target)


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="HOST:PORT")
@click.option("--workers", type=int, default=lambda: int(os.environ.get("GUARD_WORKERS", "2")),
              help="gunicorn workers [GUARD_WORKERS or 2]")  # fmt: skip
@click.option(
    "--config",
    "config_path",
    envvar="GUARD_CONFIG",
    type=click.Path(exists=True, dir_okay=False),
    help="limits file to keep applied; its namespaces become exactly the file (it prunes)",
)
@click.option("--sync-aws-every", type=float, default=None, metavar="SECONDS",
              help="run sync-aws for every namespace this often (needs the aws extra)")  # fmt: skip
def serve(bind: str, workers: int, config_path: str | None,
          sync_aws_every: float | None) -> None:  # fmt: skip
    """Serve the HTTP API (gunicorn). Without GUARD_REDIS_URL: an embedded store."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # before prometheus_client is imported
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="guard-metrics-")
    from .server import auth, embedded
    from .server import serve as srv

    srv.prepare_multiproc_dir()
    admin = auth.split_tokens(os.environ.get("GUARD_ADMIN_TOKENS"))
    client = auth.split_tokens(os.environ.get("GUARD_CLIENT_TOKENS"))
    try:
        file_tokens = auth.load_tokens([], [], os.environ.get("GUARD_TOKENS_FILE"))
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
        srv.say("!!! OPEN MODE: no GUARD_ADMIN_TOKENS / GUARD_CLIENT_TOKENS — anyone who can "
                f"reach {bind} may change limits. Loopback only. !!!")  # fmt: skip
    store = None
    if not os.environ.get("GUARD_REDIS_URL"):
        store = embedded.start()
        os.environ["GUARD_REDIS_URL"] = store.url
        srv.say(f"!!! no GUARD_REDIS_URL: using {store.describe()}; limits vanish on exit !!!")
    keeper: srv.ConfigKeeper | None = None
    if config_path:
        from .config_file import load
        from .store import RedisStore

        configs = load(config_path)
        keeper = srv.ConfigKeeper(RedisStore.from_url(os.environ["GUARD_REDIS_URL"], timeout=2.0),
                                  configs)  # fmt: skip
        for ns in configs:
            keeper.apply(ns)
        srv.say(f"applied {config_path} to namespace(s) {', '.join(sorted(configs))}")
        keeper.start(float(os.environ.get("GUARD_CONFIG_CHECK_SECONDS", "10")))
    syncing = None
    if sync_aws_every:
        syncing = srv.start_aws_sync(os.environ["GUARD_REDIS_URL"], sync_aws_every)
        srv.say(f"sync-aws every {sync_aws_every:g}s for every namespace in the store")
    opts = srv.options(bind, workers)
    # said by gunicorn's master once its sockets are bound, not before
    opts["when_ready"] = lambda _server: srv.say(f"serving on http://{bind} with {workers} "
                                                 "worker(s)")  # fmt: skip

    def on_exit() -> None:
        if syncing is not None:
            syncing.set()
        if keeper is not None:
            keeper.stop()
        if store is not None:
            store.stop()

    srv.GuardApplication(opts, on_exit).run()


@main.command()
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="limits file (YAML) naming its namespace(s)")  # fmt: skip
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

    rows = [["account", target.namespace, f"{u['account']['in_use']} / "
             f"{lim(u['account']['max_concurrency'])}", ""]]  # fmt: skip
    for n, v in u["groups"].items():
        rows.append(
            ["group", n, f"{v['in_use']} / {lim(v['max_concurrency'])}", str(v["reserved"])]
        )
    for n, v in u["functions"].items():
        rows.append(["function", n, f"{v['in_use']} / {lim(v['max_concurrency'])}", ""])
    table(rows, ["LEVEL", "NAME", "IN USE / LIMIT", "RESERVED"])


from .aws.cli import sync_aws  # noqa: E402  (boto3 is imported only when it runs)
from .cli_admin import functions, groups, leases, namespaces  # noqa: E402
from .cli_incident import COMMANDS as _INCIDENT  # noqa: E402
from .demo import demo  # noqa: E402

for _cmd in (namespaces, groups, functions, leases, sync_aws, *_INCIDENT, demo):
    main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
