"""The ``guard`` command: serve, apply, usage and admin of namespaces, groups, functions.

Admin commands talk to the HTTP API when ``GUARD_URL`` (+ ``GUARD_TOKEN``) is set — what an
operator's laptop can reach — else straight to Redis with ``GUARD_REDIS_URL``. Both go through
one interface (`guard.admin.Admin` or `guard.http_backend.HttpAdmin`, same methods), so every
command works either way. To add a command (e.g. ``sync-aws``), define it in its own module
and register it with ``main.add_command(...)`` at the bottom of this file."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

import click

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

    def leases(self, function: str | None) -> list[dict[str, Any]]:
        a = self.admin()
        if hasattr(a, "leases"):
            return list(a.leases(function))
        return [info.doc() for info in a.store.leases(a.namespace, function)]


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


class GuardGroup(click.Group):
    """Turns GuardErrors into a one-line message and exit status 1 (2 for bad usage)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GuardError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2 if isinstance(exc, ValueError) else 1)


@click.group(cls=GuardGroup)
@click.option("-n", "--namespace", envvar="GUARD_NAMESPACE", default="default", show_default=True)
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
    help="limits file to keep applied",
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
    srv.say(f"serving on http://{bind} with {workers} worker(s)")

    def on_exit() -> None:
        if syncing is not None:
            syncing.set()
        if keeper is not None:
            keeper.stop()
        if store is not None:
            store.stop()

    srv.GuardApplication(srv.options(bind, workers), on_exit).run()


@main.command()
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="show the diff, change nothing")
@pass_target
def apply(target: Target, path: str, dry_run: bool) -> None:
    """Make the store match a limits file (each namespace in one atomic write)."""
    from .config_file import diff, load

    configs = load(path, target.namespace)
    for ns, cfg in sorted(configs.items()):
        changes = diff(target.read_config(ns), cfg)
        click.echo(
            f"namespace {ns}: " + ("no changes" if not changes else f"{len(changes)} change(s)")
        )
        for line in changes:
            click.echo(f"  {line}")
        if changes and not dry_run:
            target.write_config(ns, cfg)
    if dry_run:
        click.echo("dry run: nothing was changed")


@main.command()
@pass_target
def usage(target: Target) -> None:
    """Live usage: in use against limit at every level."""
    u = target.admin().usage()

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
