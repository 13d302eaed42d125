"""The worked examples of docs/sdk.md ("Example: a per-tenant SQS consumer", "Example: a
per-API-key rate limit") run as written: the limits file applies, the curl bodies are
accepted by the server, and the Python handler behaves as the text says (real redis-server)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import guard
from guard.config_file import parse_limits

DOCS = Path(__file__).resolve().parents[1] / "docs"
SDK = (DOCS / "sdk.md").read_text()
HTTP = (DOCS / "http.md").read_text()


def section(title: str, text: str = SDK) -> str:
    start = text.index(f"### Example: {title}")
    m = re.compile(r"^#{2,3} ", re.M).search(text, start + 1)
    return text[start : m.start() if m else len(text)]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def curls(text: str) -> list[tuple[str, str, Any]]:
    """(method, path, body) of each curl line of the sh blocks (continuations joined)."""
    out = []
    for block in blocks(text, "sh"):
        for cmd in block.replace("\\\n", " ").splitlines():
            if not cmd.startswith("curl"):
                continue
            args = shlex.split(cmd)
            method = args[args.index("-X") + 1] if "-X" in args else "GET"
            url = next(a for a in args if a.startswith("$GUARD_URL"))
            body = json.loads(args[args.index("-d") + 1]) if "-d" in args else None
            out.append((method, url.removeprefix("$GUARD_URL"), body))
    return out


def apply_file(text: str, g: guard.Guard) -> None:
    (doc,) = blocks(text, "yaml")
    data = yaml.safe_load(doc.replace("namespace: prod", f"namespace: {g.namespace}"))
    (limits,) = parse_limits(data).values()
    g.admin.replace_config(limits.applied_to(g.admin.config(), prune=False))  # guard apply


def run_snippet(text: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    (code,) = blocks(text, "python")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    processed: list[Any] = []
    scope: dict[str, Any] = {"process": processed.append, "processed": processed}
    exec(compile(code, "docs/sdk.md", "exec"), scope)
    return scope


@pytest.mark.parametrize(
    ("title", "doc"),
    [
        ("a per-tenant SQS consumer", SDK),
        ("a per-API-key rate limit", SDK),
        ("per-tenant and per-API-key limits over HTTP", HTTP),
    ],
)
def test_curl_bodies_are_accepted(http: Any, ns: str, title: str, doc: str) -> None:
    calls = curls(section(title, doc))
    assert len(calls) >= 2
    for method, path, body in calls:
        path = path.replace("/namespaces/prod/", f"/namespaces/{ns}/")
        r = getattr(http, method.lower())(path, json=body)
        assert r.status_code in (200, 201), (method, path, r.json)


def test_per_tenant_sqs_consumer(
    g: guard.Guard, redis_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = section("a per-tenant SQS consumer")
    apply_file(text, g)
    scope = run_snippet(text, redis_env, monkeypatch)
    handler = scope["handler"]

    def batch(mid: str, tenant: str) -> dict[str, Any]:
        attrs = {"tenant": {"stringValue": tenant, "dataType": "String"}}
        return {"Records": [{"messageId": mid, "messageAttributes": attrs, "body": "{}"}]}

    held = [g.acquire("ingest", key="acme", ttl=30) for _ in range(5)]  # acme at its cap
    assert handler(batch("m1", "acme"), None) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert handler(batch("m2", "globex"), None) == {"batchItemFailures": []}
    big = [g.acquire("ingest", key="big-co", ttl=30) for _ in range(19)]  # its override: 20
    assert handler(batch("m3", "big-co"), None) == {"batchItemFailures": []}
    assert [r["messageId"] for r in scope["processed"]] == ["m2", "m3"]
    for lease in held + big:
        lease.release()


def test_per_api_key_rate_limit(
    g: guard.Guard, redis_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = section("a per-API-key rate limit")
    apply_file(text, g)
    handler = run_snippet(text, redis_env, monkeypatch)["handler"]

    def call(key: str) -> dict[str, Any]:
        return dict(handler({"headers": {"X-Api-Key": key}}, None))

    answers = [call("k-7f3a") for _ in range(30)]
    assert [a["statusCode"] for a in answers[:20]] == [200] * 20  # the burst
    refused = [a for a in answers if a["statusCode"] == 429]
    assert refused, "30 calls in a row stay within 10/s + a burst of 20?"
    body = json.loads(refused[0]["body"])
    assert body["scope"] == "rate:key" and 0 < body["retry_after"] <= 0.1 + 1e-3
    assert call("another-key")["statusCode"] == 200
    assert handler({"headers": {}}, None)["statusCode"] == 200  # no key: no key rate


def test_the_http_example_file_is_the_same_settings(g: guard.Guard) -> None:
    """docs/http.md's limits file holds what its curl PUTs write (and sdk.md's files)."""
    apply_file(section("per-tenant and per-API-key limits over HTTP", HTTP), g)
    both = {n: g.admin.get_function(n) for n in ("ingest", "public-api")}
    for title in ("a per-tenant SQS consumer", "a per-API-key rate limit"):
        apply_file(section(title), g)
    assert {n: g.admin.get_function(n) for n in both} == both
