"""guard.aws.flask.mount: one API Gateway handler served by Flask, both payload versions."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask import Flask

import guard
import guard.aws
from guard.aws.flask import mount, resource_path

PNG = b"\x89PNG\r\n\x1a\n\x00\x01\x02\xff"


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with what it was given, plus a binary body when asked."""
    if (event.get("queryStringParameters") or {}).get("png"):
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(PNG).decode(),
            "isBase64Encoded": True,
        }
    info = {
        "event": event,
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-One": "1"},
        "multiValueHeaders": {"X-Many": ["a", "b"]},
        "cookies": ["session=abc; Path=/", "theme=dark"],
        "body": json.dumps(info),
    }


@pytest.fixture
def app() -> Flask:
    app = Flask("t")
    mount(
        app, "/v2/items/<item_id>", echo, methods=["GET", "POST"], function_name="items", timeout=12
    )
    mount(app, "/v1/items/<int:item_id>/<path:rest>", echo, methods=["POST"], version="1.0")
    return app


def test_resource_path() -> None:
    assert resource_path("/a/<x>/<int:y>/<path:z>") == "/a/{x}/{y}/{z+}"


def test_v2_round_trip(app: Flask) -> None:
    c = app.test_client()
    c.set_cookie("sid", "s1")
    c.set_cookie("lang", "en")
    r = c.get("/v2/items/42?a=1&a=2&b=x", headers={"X-Trace": "t1", "X-Request-Id": "rid-1"})
    assert r.status_code == 201
    assert r.headers["X-One"] == "1" and r.headers.getlist("X-Many") == ["a", "b"]
    assert r.headers.getlist("Set-Cookie") == ["session=abc; Path=/", "theme=dark"]
    assert r.headers["Content-Type"] == "application/json"
    info = r.get_json()
    ev = info["event"]
    assert ev["version"] == "2.0" and ev["routeKey"] == "GET /v2/items/{item_id}"
    assert ev["rawPath"] == "/v2/items/42" and ev["rawQueryString"] == "a=1&a=2&b=x"
    assert ev["queryStringParameters"] == {"a": "1,2", "b": "x"}
    assert ev["pathParameters"] == {"item_id": "42"}
    assert ev["headers"]["x-trace"] == "t1" and "cookie" not in ev["headers"]
    assert sorted(ev["cookies"]) == ["lang=en", "sid=s1"]
    assert ev["requestContext"]["http"]["method"] == "GET"
    assert ev["requestContext"]["requestId"] == "rid-1" == info["request_id"]
    assert "body" not in ev and ev["isBase64Encoded"] is False
    assert info["function"] == "items" and 11_000 < info["remaining"] <= 12_000


def test_v2_bodies_text_and_binary(app: Flask) -> None:
    c = app.test_client()
    ev = c.post("/v2/items/1", json={"k": "v"}).get_json()["event"]
    assert ev["isBase64Encoded"] is False and json.loads(ev["body"]) == {"k": "v"}
    ev = c.post("/v2/items/1", data=PNG, content_type="image/png").get_json()["event"]
    assert ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == PNG
    r = c.get("/v2/items/1?png=1")
    assert r.headers["Content-Type"] == "image/png" and r.data == PNG


def test_v1_event(app: Flask) -> None:
    r = app.test_client().post(
        "/v1/items/7/a/b?x=1&x=2",
        data=b"hello",
        content_type="text/plain",
        headers=[("X-Dup", "1"), ("X-Dup", "2")],
    )
    assert r.status_code == 201
    ev = r.get_json()["event"]
    assert ev["resource"] == "/v1/items/{item_id}/{rest+}" and ev["httpMethod"] == "POST"
    assert ev["path"] == "/v1/items/7/a/b" and ev["pathParameters"] == {
        "item_id": "7",
        "rest": "a/b",
    }
    assert ev["queryStringParameters"] == {"x": "2"}
    assert ev["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    # WSGI joins a repeated request header into one value (RFC 9110 list syntax)
    assert ev["multiValueHeaders"]["X-Dup"] == ["1, 2"] and ev["headers"]["X-Dup"] == "1, 2"
    assert ev["body"] == "hello" and ev["isBase64Encoded"] is False
    assert ev["requestContext"]["resourcePath"] == "/v1/items/{item_id}/{rest+}"


def test_v2_inferred_response() -> None:
    app = Flask("t")
    mount(app, "/plain", lambda e, c: {"hello": "world"})
    r = app.test_client().get("/plain")
    assert r.status_code == 200 and r.get_json() == {"hello": "world"}


def test_bad_version() -> None:
    with pytest.raises(guard.UsageError):
        mount(Flask("t"), "/x", echo, version="3.0")


def test_guarded_handler_on_flask(g: guard.Guard) -> None:
    """The same guarded handler as on Lambda: the function name comes from the mount."""
    g.admin.put_function("orders", max_concurrency=1)
    seen: list[int] = []

    @guard.aws.api_gateway(g)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(g.admin.usage()["functions"]["orders"]["in_use"])
        return {"statusCode": 200, "body": "ok"}

    app = Flask("t")
    mount(app, "/orders", handler, function_name="orders")
    c = app.test_client()
    assert c.get("/orders").data == b"ok" and seen == [1]
    held = g.acquire("orders", ttl=30)
    r = c.get("/orders")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.get_json()["scope"] == "function"
    held.release()
