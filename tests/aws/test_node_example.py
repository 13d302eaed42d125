"""examples/node_http/handler.mjs: its HTTP exchange (against a stand-in server) and its
behaviour against a live ``guard serve``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from live import CLIENT_TOKEN
from redis_proc import free_port

import guard

HANDLER = Path(__file__).resolve().parents[2] / "examples" / "node_http" / "handler.mjs"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

DRIVER = """
import { handler } from %s;
const ctx = { functionName: "node-fn", getRemainingTimeInMillis: () => 5000 };
console.log(JSON.stringify(await handler({ rawPath: "/" }, ctx)));
"""


def node(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GUARD_", "AWS_LAMBDA"))}
    full.update(env)
    return subprocess.run(
        [str(NODE), "--input-type=module", "-e", DRIVER % json.dumps(HANDLER.as_uri())],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )


def run_node(env: dict[str, str]) -> dict[str, Any]:
    out = node(env)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- against a stand-in server: the request shapes ---------------------------------------------


class StandIn(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], Any]] = []
    mode = "grant"

    def _record(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        self.seen.append((self.command, self.path, dict(self.headers), body))
        return body

    def do_POST(self) -> None:
        body = self._record()
        if self.mode == "throttle":
            problem = {
                "type": "urn:guard:problem:throttled",
                "title": "Throttled",
                "status": 429,
                "detail": "d",
                "scope": "group:api",
                "function": body["function"],
                "retry_after": 1.2,
            }
            self._send(429, problem, {"Retry-After": "2"}, "application/problem+json")
        elif self.mode == "error":
            self._send(500, {}, {}, "application/json")
        else:
            lease = {
                "lease_id": body["lease_id"],
                "function": body["function"],
                "groups": [],
                "expires_at": time.time() + 7,
                "fence": 41,
                "ttl_seconds": body["ttl_seconds"],
            }
            self._send(201, lease, {}, "application/json")

    def do_DELETE(self) -> None:
        self._record()
        self.send_response(204)
        self.end_headers()

    def _send(self, status: int, doc: Any, headers: dict[str, str], ctype: str) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        for k, v in {**headers, "Content-Type": ctype, "Content-Length": str(len(data))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    StandIn.seen, StandIn.mode = [], "grant"
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def env_for(url: str, **extra: str) -> dict[str, str]:
    return {"GUARD_URL": url + "/", "GUARD_TOKEN": "tok", "GUARD_NAMESPACE": "prod", **extra}


def test_stand_in_grant_and_release(stand_in: str) -> None:
    out = run_node(env_for(stand_in))
    assert out["statusCode"] == 200
    body = json.loads(out["body"])
    (m1, p1, h1, b1), (m2, p2, h2, _) = StandIn.seen
    assert (m1, p1) == ("POST", "/v1/namespaces/prod/leases")
    assert h1["Authorization"] == "Bearer tok" and h1["Content-Type"] == "application/json"
    assert b1["function"] == "node-fn" and re.fullmatch(r"[0-9a-f]{32}", b1["lease_id"])
    assert b1["ttl_seconds"] == pytest.approx(7.0)  # remaining 5 s + 2 s margin
    assert (m2, p2) == ("DELETE", f"/v1/namespaces/prod/leases/{b1['lease_id']}")
    assert h2["Authorization"] == "Bearer tok"
    assert body["lease_id"] == b1["lease_id"] and body["fence"] == 41


def test_stand_in_throttled(stand_in: str) -> None:
    StandIn.mode = "throttle"
    out = run_node(env_for(stand_in, AWS_LAMBDA_FUNCTION_NAME="from-env"))
    assert out["statusCode"] == 429 and out["headers"]["Retry-After"] == "2"
    assert out["headers"]["Content-Type"] == "application/problem+json"
    assert json.loads(out["body"])["scope"] == "group:api"
    assert [m for m, *_ in StandIn.seen] == ["POST"]  # nothing to release
    assert StandIn.seen[0][3]["function"] == "from-env"


def test_unavailable_open_and_closed(stand_in: str) -> None:
    StandIn.mode = "error"
    out = run_node(env_for(stand_in))
    assert out["statusCode"] == 200 and json.loads(out["body"])["lease_id"] is None
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_node(env_for(dead, GUARD_ON_UNAVAILABLE="closed", GUARD_TIMEOUT_MS="300"))
    assert out["statusCode"] == 503
    assert json.loads(out["body"])["function"] == "node-fn"


# -- against a live guard serve ----------------------------------------------------------------

# The live test uses the session `live_server` fixture of tests/conftest.py: a real
# `guard serve --workers 3` against the test redis-server, tokens from tests/live.py.


def test_live_guard_serve(live_server: str, g: guard.Guard) -> None:
    g.admin.put_function("node-fn", max_concurrency=1)
    env = env_for(live_server, GUARD_TOKEN=CLIENT_TOKEN, GUARD_NAMESPACE=g.namespace)

    out = run_node(env)
    assert out["statusCode"] == 200, out
    body = json.loads(out["body"])
    assert re.fullmatch(r"[0-9a-f]{32}", body["lease_id"]) and body["fence"] >= 1
    assert 0 < body["ttl_seconds"] <= 7.0
    assert g.admin.usage()["functions"]["node-fn"]["in_use"] == 0  # released by DELETE

    held = g.acquire("node-fn", ttl=30)  # the one slot is taken
    out = run_node(env)
    assert out["statusCode"] == 429, out
    assert int(out["headers"]["Retry-After"]) >= 1
    problem = json.loads(out["body"])
    assert problem["scope"] == "function" and problem["function"] == "node-fn"
    held.release()

    bad = node({**env, "GUARD_TOKEN": "wrong"})  # a misconfiguration fails loudly
    assert bad.returncode != 0 and re.search(r"guard: 40[13]", bad.stderr)
