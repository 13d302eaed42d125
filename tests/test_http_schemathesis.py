"""schemathesis against the served /openapi.json of a live `guard serve`: 0 failures.

Runs schemathesis' CLI (all checks, coverage + fuzzing + stateful phases) with an admin token,
bounded to 30 examples per operation, on a private redis-server so its random namespaces
touch nothing else. tests/schemathesis.toml says why 400 is an accepted answer to valid data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from live import ADMIN_TOKEN, LiveServer
from redis_proc import RedisProcess

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    redis = RedisProcess().start()
    server = LiveServer(redis.url, workers=2)
    try:
        server.start()
        cmd = [
            st,
            "--config-file",
            os.path.join(HERE, "schemathesis.toml"),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "ensure_resource_availability",  # leases expire by design: schemathesis.toml
            "--max-examples",
            "30",
            "--seed",
            "1",
            "-H",
            f"Authorization: Bearer {ADMIN_TOKEN}",
        ]
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=280,
            env={**os.environ, "NO_COLOR": "1"},
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-2000:]
        summary = r.stdout.strip().splitlines()[-1]
        assert "failure" not in summary and "error" not in summary, r.stdout[-8000:]
    finally:
        server.stop()
        redis.cleanup()
