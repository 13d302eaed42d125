"""guard.aws.api_gateway over every event format: REST (1.0), HTTP API (2.0), function URL."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import guard
import guard.aws
from guard.aws.adapters import PROBLEM_THROTTLED, PROBLEM_UNAVAILABLE

V1 = {
    "resource": "/orders/{id}",
    "path": "/orders/7",
    "httpMethod": "GET",
    "headers": {"Accept": "application/json"},
    "multiValueHeaders": {"Accept": ["application/json"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"id": "7"},
    "stageVariables": None,
    "body": None,
    "isBase64Encoded": False,
    "requestContext": {"requestId": "r1", "stage": "prod", "httpMethod": "GET"},
}
V2 = {
    "version": "2.0",
    "routeKey": "GET /orders/{id}",
    "rawPath": "/orders/7",
    "rawQueryString": "",
    "cookies": ["s=1"],
    "headers": {"accept": "application/json"},
    "pathParameters": {"id": "7"},
    "isBase64Encoded": False,
    "requestContext": {
        "requestId": "r2",
        "stage": "$default",
        "routeKey": "GET /orders/{id}",
        "http": {"method": "GET", "path": "/orders/7"},
    },
}
FUNCTION_URL = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/orders/7",
    "rawQueryString": "a=1",
    "headers": {"host": "abc.lambda-url.us-east-1.on.aws"},
    "queryStringParameters": {"a": "1"},
    "isBase64Encoded": False,
    "requestContext": {
        "requestId": "r3",
        "routeKey": "$default",
        "stage": "$default",
        "domainName": "abc.lambda-url.us-east-1.on.aws",
        "http": {"method": "GET", "path": "/orders/7"},
    },
}
EVENTS = pytest.mark.parametrize("event", [V1, V2, FUNCTION_URL], ids=["v1", "v2", "function-url"])


class Ctx:
    function_name = "ctx-name"
    aws_request_id = "req"

    def __init__(self, ms: int = 10_000) -> None:
        self.ms = ms

    def get_remaining_time_in_millis(self) -> int:
        return self.ms


def in_use(g: guard.Guard, fn: str) -> int:
    return int(g.admin.usage()["functions"].get(fn, {}).get("in_use", 0))


@EVENTS
def test_granted_runs_handler_and_releases(g: guard.Guard, event: dict[str, Any]) -> None:
    seen: list[int] = []

    @guard.aws.api_gateway(g, "orders")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(in_use(g, "orders"))
        return {"statusCode": 200, "cookies": ["a=b"], "body": json.dumps({"ok": True})}

    out = handler(event, Ctx())
    assert out == {"statusCode": 200, "cookies": ["a=b"], "body": '{"ok": true}'}
    assert seen == [1]  # the lease was held while the handler ran
    assert in_use(g, "orders") == 0  # and released after


@EVENTS
def test_throttled_is_429_problem(g: guard.Guard, event: dict[str, Any]) -> None:
    g.admin.put_function("orders", max_concurrency=1)
    held = g.acquire("orders", ttl=30)
    ran = []

    @guard.aws.api_gateway(g, "orders")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ran.append(1)
        return {"statusCode": 200}

    out = handler(event, Ctx())
    assert not ran
    assert out["statusCode"] == 429
    assert out["headers"]["Content-Type"] == "application/problem+json"
    retry = int(out["headers"]["Retry-After"])
    assert retry >= 1
    body = json.loads(out["body"])
    assert body["type"] == PROBLEM_THROTTLED
    assert body["status"] == 429 and body["title"] and body["detail"]
    assert body["scope"] == "function" and body["function"] == "orders"
    assert retry == max(1, -(-body["retry_after"] // 1))  # ceil of the hint
    held.release()
    assert handler(event, Ctx())["statusCode"] == 200


def test_group_scope_named(g: guard.Guard) -> None:
    g.admin.put_group("api", max_concurrency=0, members=["orders"])

    @guard.aws.api_gateway(g, "orders")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}

    body = json.loads(handler(V2, Ctx())["body"])
    assert body["scope"] == "group:api"


def test_name_from_env_then_context(g: guard.Guard, monkeypatch: pytest.MonkeyPatch) -> None:
    g.admin.put_function("from-env", max_concurrency=0)
    g.admin.put_function("ctx-name", max_concurrency=0)

    @guard.aws.api_gateway(g)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "from-env")
    assert json.loads(handler(V1, Ctx())["body"])["function"] == "from-env"
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    assert json.loads(handler(V1, Ctx())["body"])["function"] == "ctx-name"


def test_lease_ttl_follows_context_deadline(g: guard.Guard) -> None:
    leases: list[guard.Lease] = []
    real = g.acquire

    def spy(*a: Any, **kw: Any) -> guard.Lease:
        lease = real(*a, **kw)
        leases.append(lease)
        return lease

    g.acquire = spy  # type: ignore[method-assign]

    @guard.aws.api_gateway(g, "orders")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 204}

    handler(V2, Ctx(ms=5_000))
    assert leases and leases[0].ttl == pytest.approx(5.0 + g.lease_margin, abs=0.01)
    assert leases[0].expires_at == pytest.approx(time.time() + 7.0, abs=1.5)


def test_closed_unavailable_is_503(redis_server: Any) -> None:
    from redis_proc import free_port

    dead = guard.Guard.from_url(
        f"redis://127.0.0.1:{free_port()}/0", on_unavailable="closed", timeout=0.05
    )

    @guard.aws.api_gateway(dead, "orders")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}

    out = handler(V2, Ctx())
    assert out["statusCode"] == 503
    body = json.loads(out["body"])
    assert body["type"] == PROBLEM_UNAVAILABLE and body["function"] == "orders"
    dead.close()


def test_handler_errors_propagate_and_release(g: guard.Guard) -> None:
    @guard.aws.api_gateway(g, "orders")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler(V1, Ctx())
    assert in_use(g, "orders") == 0


def api_key(event: dict[str, Any], context: Any) -> str | None:
    """The key of a request: its x-api-key header (v1 keeps the client's case)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return headers.get("x-api-key")


@EVENTS
def test_key_from_the_event_per_api_key_rate(g: guard.Guard, event: dict[str, Any]) -> None:
    g.admin.put_function("orders", key_rate_per_second=0.01, key_rate_burst=1)

    @guard.aws.api_gateway(g, "orders", key=api_key)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}

    def call(key: str | None) -> dict[str, Any]:
        e = json.loads(json.dumps(event))
        if key is not None:
            e["headers"]["X-Api-Key"] = key
        return dict(handler(e, Ctx()))

    assert call("k1")["statusCode"] == 200
    out = call("k1")
    assert out["statusCode"] == 429 and json.loads(out["body"])["scope"] == "rate:key"
    assert call("k2")["statusCode"] == 200
    assert call(None)["statusCode"] == 200  # no key: no key rate
    out = call("k 3")
    assert out["statusCode"] == 400 and json.loads(out["body"])["field"] == "key"


def test_fixed_key_per_key_concurrency(g: guard.Guard) -> None:
    g.admin.put_function("orders", key_max_concurrency=1)
    held = g.acquire("orders", key="tenant-a", ttl=30)

    @guard.aws.api_gateway(g, "orders", key="tenant-a")
    def a(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}

    @guard.aws.api_gateway(g, "orders", key="tenant-b")
    def b(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}

    out = a(V1, Ctx())
    assert out["statusCode"] == 429 and json.loads(out["body"])["scope"] == "key"
    assert b(V1, Ctx())["statusCode"] == 200
    held.release()
    assert a(V1, Ctx())["statusCode"] == 200
    with pytest.raises(guard.UsageError):
        guard.aws.api_gateway(g, "orders", key="x" * 129)
