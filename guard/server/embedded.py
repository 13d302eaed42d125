"""The default store of ``guard serve`` when no ``GUARD_REDIS_URL`` is given (``make run``).

A ``redis-server`` child on a free loopback port when the binary is on PATH (real Redis:
the same scripts and semantics as production, no persistence); otherwise an in-process
fakeredis TCP server (needs ``fakeredis[lua]``), good for a first look only. Either way the
data is gone when ``guard serve`` exits, and the caller says so loudly."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(port: int, timeout: float = 10.0) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.02)
    finally:
        client.close()
    raise RuntimeError(f"embedded store did not answer on port {port}")


class EmbeddedStore:
    def __init__(self, kind: str, port: int) -> None:
        self.kind, self.port = kind, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: str | None = None
        self._stop: object = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def describe(self) -> str:
        if self.kind == "redis-server":
            return f"a private redis-server child on {self.url} (no persistence)"
        return f"an in-process fakeredis server on {self.url} (redis-server not on PATH)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        shutdown = getattr(self._stop, "shutdown", None)
        if callable(shutdown):
            shutdown()


def _die_with_parent() -> None:
    """Linux: the redis-server child gets SIGTERM when guard serve dies, even by SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def private_redis_args(port: int, workdir: str) -> list[str]:
    """redis-server options of a private server: loopback `port`, no persistence, files in
    `workdir`. The one place they are written (the tests' and the benchmarks' servers use it)."""
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", workdir]  # fmt: skip


def start(prefer_redis: bool = True) -> EmbeddedStore:
    """Start the embedded store; it stops when this process exits."""
    port = free_port()
    binary = shutil.which("redis-server") if prefer_redis else None
    if binary:
        store = EmbeddedStore("redis-server", port)
        store.dir = tempfile.mkdtemp(prefix="guard-embedded-")
        cmd = [binary, *private_redis_args(port, store.dir)]
        store.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    else:
        from fakeredis import TcpFakeServer

        store = EmbeddedStore("fakeredis", port)
        server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name="fakeredis").start()
        store._stop = server
    atexit.register(store.stop)
    _wait_ping(port)
    os.environ.setdefault("GUARD_EMBEDDED_STORE", store.kind)
    return store
