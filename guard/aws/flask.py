"""Serve an API Gateway-style Lambda handler from Flask, so one handler (and, with
`guard.aws.api_gateway`, one set of limits) runs the same on Lambda and in a container.

    from guard.aws.flask import mount
    mount(app, "/orders/<order_id>", handler, methods=["GET", "POST"], version="2.0")

Each request becomes a payload 2.0 (HTTP API, function URL) or 1.0 (REST API) event plus a
minimal context object whose deadline is `timeout` seconds away; the handler's answer
(``statusCode``, ``headers``, ``multiValueHeaders``, ``cookies``, ``body``,
``isBase64Encoded``) becomes the Flask response. A 2.0 handler that returns anything other
than a dict with ``statusCode`` gets API Gateway's inference: a 200 JSON response.

WSGI hands over a repeated request header as one comma-joined value, so
``multiValueHeaders`` holds it as a single item; repeated query parameters and response headers
(``multiValueHeaders``, ``cookies``) keep every value."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from ..errors import UsageError

TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/graphql",
    "application/yaml",
)
VERSIONS = ("1.0", "2.0")
_RULE_ARG = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers use; the deadline is fixed at creation."""

    function_name: str
    timeout: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 0
    log_group_name: str = ""
    log_stream_name: str = ""
    invoked_function_arn: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout
        self.invoked_function_arn = self.invoked_function_arn or (
            f"arn:aws:lambda:local:000000000000:function:{self.function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def is_text(content_type: str | None) -> bool:
    ct = (content_type or "").split(";")[0].strip().lower()
    return not ct or ct.startswith("text/") or ct in TEXT_TYPES or ct.endswith(("+json", "+xml"))


def resource_path(rule: str) -> str:
    """Flask ``/items/<int:id>/<path:rest>`` → API Gateway ``/items/{id}/{rest+}``."""

    def sub(m: re.Match[str]) -> str:
        return "{" + m.group(2) + ("+" if m.group(1) == "path" else "") + "}"

    return _RULE_ARG.sub(sub, rule)


def _body() -> tuple[str | None, bool]:
    raw = request.get_data()
    if not raw:
        return None, False
    if is_text(request.content_type):
        try:
            return raw.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(raw).decode("ascii"), True


def _multi(items: Iterable[tuple[str, str]], lower: bool = False) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in items:
        out.setdefault(k.lower() if lower else k, []).append(v)
    return out


def build_event(rule: str, version: str, stage: str = "$default") -> dict[str, Any]:
    """The API Gateway event for the current Flask request."""
    body, b64 = _body()
    query = _multi(request.args.items(multi=True))
    path_params = {k: str(v) for k, v in (request.view_args or {}).items()} or None
    now_ms = int(time.time() * 1000)
    request_id = request.headers.get("X-Request-Id") or str(uuid.uuid4())
    source_ip = request.remote_addr or "127.0.0.1"
    agent = request.headers.get("User-Agent", "")
    if version == "2.0":
        headers = {
            k: ",".join(v)
            for k, v in _multi(request.headers.items(), lower=True).items()
            if k != "cookie"
        }
        cookies = [c.strip() for c in request.headers.get("Cookie", "").split(";") if c.strip()]
        route_key = f"{request.method} {resource_path(rule)}"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode("latin-1"),
            "headers": headers,
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "requestId": request_id,
                "routeKey": route_key,
                "stage": stage,
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
                "timeEpoch": now_ms,
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": source_ip,
                    "userAgent": agent,
                },
            },
            "isBase64Encoded": b64,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
        if path_params:
            event["pathParameters"] = path_params
        if body is not None:
            event["body"] = body
        return event
    multi_headers = _multi(request.headers.items())
    return {
        "resource": resource_path(rule),
        "path": request.path,
        "httpMethod": request.method,
        "headers": {k: v[-1] for k, v in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "stage": stage,
            "resourcePath": resource_path(rule),
            "httpMethod": request.method,
            "path": request.path,
            "requestId": request_id,
            "requestTimeEpoch": now_ms,
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "domainName": request.host,
            "identity": {"sourceIp": source_ip, "userAgent": agent},
        },
        "body": body,
        "isBase64Encoded": b64,
    }


def to_response(result: Any, version: str) -> Response:
    """Turn a handler's return value into a Flask response, as API Gateway would."""
    if not (isinstance(result, dict) and "statusCode" in result):
        if version == "1.0":
            raise TypeError(f"a payload 1.0 handler must return a dict with statusCode: {result!r}")
        body = result if isinstance(result, str) else json.dumps(result)
        result = {"statusCode": 200, "body": body, "headers": {"content-type": "application/json"}}
    raw = result.get("body")
    if raw is None:
        data: bytes = b""
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(raw)
    else:
        data = raw.encode("utf-8") if isinstance(raw, str) else str(raw).encode("utf-8")
    resp = Response(data, status=int(result["statusCode"]))
    resp.headers.pop("Content-Type", None)
    for k, v in (result.get("multiValueHeaders") or {}).items():
        for item in v if isinstance(v, list) else [v]:
            resp.headers.add(k, str(item))
    for k, v in (result.get("headers") or {}).items():
        resp.headers[k] = str(v)  # single-value headers win over multi-value ones
    for c in result.get("cookies") or []:
        resp.headers.add("Set-Cookie", str(c))
    return resp


def mount(
    app: Flask,
    rule: str,
    handler: Callable[[dict[str, Any], Any], Any],
    *,
    methods: Iterable[str] = ("GET",),
    version: str = "2.0",
    function_name: str | None = None,
    timeout: float = 30.0,
    stage: str = "$default",
    endpoint: str | None = None,
) -> None:
    """Route `rule` (Flask syntax) to the Lambda `handler`.

    `function_name` (default ``AWS_LAMBDA_FUNCTION_NAME``, else the handler's name) is the
    context's ``function_name`` — the name `guard.aws.api_gateway` guards when none is given.
    `timeout` is the invocation deadline the context reports (and so the lease TTL)."""
    if version not in VERSIONS:
        raise UsageError(
            f"version must be one of {', '.join(VERSIONS)} (got {version!r})", "version"
        )
    name = function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or handler.__name__
    methods = [m.upper() for m in methods]

    def view(**_: Any) -> Response:
        event = build_event(rule, version, stage)
        context = LambdaContext(name, timeout, aws_request_id=event["requestContext"]["requestId"])
        return to_response(handler(event, context), version)

    endpoint = endpoint or "lambda_" + re.sub(r"\W", "_", f"{rule}_{'_'.join(methods)}")
    app.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=methods)
