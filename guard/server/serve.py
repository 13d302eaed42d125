"""``guard serve``: the Flask app on an embedded gunicorn, plus limits-as-code upkeep.

gunicorn runs guard's gevent worker (`guard.server.worker`): a lease request that waits
(≤ 30 s) or a client that sends slowly is a greenlet, so neither holds a thread that
/healthz or a release needs. The master keeps the config file applied: it applies it at start and
then checks every ``GUARD_CONFIG_CHECK_SECONDS`` (default 10) that each namespace's config
version is still there and not lower than what it last saw — a Redis restart without
persistence wipes it — and re-applies the file when it is not. Only the master does this,
so there is one checker per ``guard serve`` however many workers it runs."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from .. import wire
from ..admin import Admin, apply_config
from ..errors import GuardError
from ..model import Config
from ..settings import Settings
from ..store import RedisStore


def say(msg: str) -> None:
    print(f"guard: {msg}", file=sys.stderr, flush=True)


def prepare_multiproc_dir() -> None:
    """Create (and clear) PROMETHEUS_MULTIPROC_DIR: stale files from a previous run would
    add old workers' observations to the histogram."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            os.unlink(full)


def start_aws_sync(redis_url: str, every: float) -> threading.Event:
    """Run `guard.aws.sync.run_sync` for every namespace in the store every `every` seconds,
    in one daemon thread of the gunicorn master (workers are forked without it, so one
    server runs one sync). Set the returned event to stop it."""
    from ..aws.sync import run_sync

    stop = threading.Event()
    store = RedisStore.from_url(redis_url, timeout=5.0)

    def loop() -> None:
        while not stop.is_set():
            try:
                for ns in store.namespaces():
                    for line in run_sync(
                        Admin(store, ns, actor="guard serve --sync-aws-every"), None
                    ).lines():
                        say(f"sync-aws {ns}: {line}")
            except Exception as exc:  # a failed pass is reported; the next one runs on time
                say(f"sync-aws pass failed (will retry): {exc}")
            stop.wait(every)

    threading.Thread(target=loop, daemon=True, name="guard-sync-aws").start()
    return stop


class ConfigKeeper:
    """Applies `configs` and re-applies a namespace whose stored version vanished or fell."""

    def __init__(self, store: RedisStore, configs: dict[str, Config]) -> None:
        self.store = store
        self.configs = configs
        self.seen: dict[str, int] = {}
        self._stop = threading.Event()

    def _version(self, ns: str) -> int:
        return int(self.store.read_config(ns).get(wire.VERSION, "0"))

    def apply(self, ns: str) -> None:
        apply_config(self.store, ns, self.configs[ns], "guard serve --config")
        self.seen[ns] = self._version(ns)

    def check(self) -> list[str]:
        """One pass; returns the namespaces it re-applied."""
        done = []
        for ns in self.configs:
            try:
                v = self._version(ns)
                if ns not in self.seen or v == 0 or v < self.seen[ns]:
                    self.apply(ns)
                    done.append(ns)
                else:
                    self.seen[ns] = v  # later admin writes are kept, not overwritten
            except GuardError as exc:
                say(f"config check for {ns!r} failed (will retry): {exc}")
        return done

    def run(self, every: float) -> None:
        while not self._stop.wait(every):
            for ns in self.check():
                say(f"store was reset: re-applied the config file to namespace {ns!r}")

    def start(self, every: float) -> None:
        threading.Thread(target=self.run, args=(every,), daemon=True, name="guard-config").start()

    def stop(self) -> None:
        self._stop.set()


def _child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class GuardApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn embedded, configured from `options` (gunicorn setting names)."""

    def __init__(
        self,
        options: dict[str, Any],
        on_exit: Callable[[], None] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.options = options
        self.on_exit = on_exit
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("child_exit", _child_exit)
        if self.on_exit is not None:
            done = self.on_exit
            self.cfg.set("on_exit", lambda server: done())

    def load(self) -> Any:
        from . import create_app

        return create_app(settings=self.settings)


# gunicorn's default format plus the token name (`guard.server.auth`) as the actor
ACCESS_LOG_FORMAT = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" actor=%({guard.actor}e)s'
)


def options(bind: str, workers: int, settings: Settings | None = None) -> dict[str, Any]:
    st = settings or Settings.from_env()
    return {
        "bind": bind,
        "workers": workers,
        "worker_class": "guard.server.worker.GuardWorker",
        "worker_connections": st.worker_connections,
        "timeout": 60,  # > the 30 s wait bound of a lease request
        "graceful_timeout": 10,
        "keepalive": 75,  # clients (HttpBackend) keep connections alive; > an ALB's 60 s idle
        "accesslog": st.access_log,
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": st.log_level,
        "proc_name": "guard",
        "control_socket_disable": True,  # several guard serve may run on one host
    }
