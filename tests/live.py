"""A `guard serve` subprocess on a free loopback port, for tests and the benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from redis_proc import free_port

ADMIN_TOKEN = "test-admin-token"
CLIENT_TOKEN = "test-client-token"


class LiveServer:
    def __init__(
        self,
        redis_url: str | None,
        workers: int = 2,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.args = args
        self.env = dict(os.environ)
        self.env.pop("GUARD_REDIS_URL", None)
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if redis_url:
            self.env["GUARD_REDIS_URL"] = redis_url
        self.env.update(
            {
                "GUARD_ADMIN_TOKENS": ADMIN_TOKEN,
                "GUARD_CLIENT_TOKENS": CLIENT_TOKEN,
                "GUARD_LOG_LEVEL": "warning",
            }
        )
        self.env.update(env or {})
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            prefix="guard-serve-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.start_no_wait()
        return self.wait_for("/readyz", timeout)

    def start_no_wait(self) -> LiveServer:
        guard_bin = os.path.join(os.path.dirname(sys.executable), "guard")
        cmd = [
            guard_bin,
            "serve",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            *self.args,
        ]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=self.log)
        return self

    def wait_for(self, path: str, timeout: float = 30.0) -> LiveServer:
        """Poll `path` until it answers 200 (bounded by `timeout`)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"guard serve exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"guard serve did not answer {path}: {self.output()}")

    def output(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
