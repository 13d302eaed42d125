"""A private redis-server for tests and tools: free loopback port, temp dir, torn down after.

Never touches the machine's shared Redis on 6379."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

import redis

from guard.server.embedded import private_redis_args


def wait_for_ping(port: int, timeout: float) -> bool:
    """Poll PING (bounded by `timeout`) until the server on `port` answers."""
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.02)
        return False
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisProcess:
    """One redis-server child. `restart()` keeps the port (and, with AOF, the data)."""

    def __init__(self, port: int | None = None, args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.args = list(args)
        self.dir = tempfile.mkdtemp(prefix="guard-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        cmd = [
            shutil.which("redis-server") or "redis-server",
            *private_redis_args(self.port, self.dir),
            "--logfile",
            os.path.join(self.dir, "redis.log"),
            *self.args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_ping(self.port, timeout):
            self.kill()
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, hard: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL when `hard`) and start again on the same port and dir:
        empty without persistence, with its data under ``--appendonly yes``."""
        self.kill() if hard else self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the process holds its sockets open but answers nothing (a stall)."""
        if self.proc:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc:
            os.kill(self.proc.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(port=self.port, **kw)  # type: ignore[arg-type]


class SentinelProcess(RedisProcess):
    """One ``redis-server --sentinel`` watching `service` at `master_port` (quorum 2)."""

    def __init__(self, service: str, master_port: int, down_after_ms: int = 500) -> None:
        super().__init__()
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"logfile {os.path.join(self.dir, 'sentinel.log')}\n"
                f"sentinel monitor {service} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
                f"sentinel failover-timeout {service} 5000\n"
            )

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        cmd = [shutil.which("redis-server") or "redis-server", self.conf, "--sentinel"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_ping(self.port, timeout):
            self.kill()
            raise RuntimeError(f"redis sentinel did not start on port {self.port}")
        return self
