"""Realistic API Gateway events (the shapes of AWS's documented samples) and a Lambda context."""

from __future__ import annotations

import copy
import time
from typing import Any

REST_V1: dict[str, Any] = {
    "resource": "/orders/{id}",
    "path": "/orders/7",
    "httpMethod": "GET",
    "headers": {
        "Accept": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Forwarded-For": "198.51.100.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {
        "Accept": ["application/json"],
        "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
        "User-Agent": ["curl/8.5.0"],
        "X-Forwarded-For": ["198.51.100.7"],
        "X-Forwarded-Port": ["443"],
        "X-Forwarded-Proto": ["https"],
    },
    "queryStringParameters": {"verbose": "1"},
    "multiValueQueryStringParameters": {"verbose": ["1"]},
    "pathParameters": {"id": "7"},
    "stageVariables": None,
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "extendedRequestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "httpMethod": "GET",
        "identity": {"sourceIp": "198.51.100.7", "userAgent": "curl/8.5.0"},
        "path": "/prod/orders/7",
        "protocol": "HTTP/1.1",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "requestTime": "09/Apr/2026:12:34:56 +0000",
        "requestTimeEpoch": 1775738096000,
        "resourceId": "123456",
        "resourcePath": "/orders/{id}",
        "stage": "prod",
    },
    "body": None,
    "isBase64Encoded": False,
}

HTTP_V2: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "GET /orders/{id}",
    "rawPath": "/orders/7",
    "rawQueryString": "verbose=1",
    "cookies": ["session=abc"],
    "headers": {
        "accept": "application/json",
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-forwarded-for": "198.51.100.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    },
    "queryStringParameters": {"verbose": "1"},
    "pathParameters": {"id": "7"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {
            "method": "GET",
            "path": "/orders/7",
            "protocol": "HTTP/1.1",
            "sourceIp": "198.51.100.7",
            "userAgent": "curl/8.5.0",
        },
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": "GET /orders/{id}",
        "stage": "$default",
        "time": "09/Apr/2026:12:34:56 +0000",
        "timeEpoch": 1775738096000,
    },
    "isBase64Encoded": False,
}


def event(kind: str) -> dict[str, Any]:
    """A fresh copy (frameworks may mutate what they are given)."""
    return copy.deepcopy(REST_V1 if kind == "v1" else HTTP_V2)


class LambdaContext:
    """The attributes of the Lambda runtime's context object, with a real countdown."""

    def __init__(self, function_name: str = "orders-fn", ms: int = 10_000) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = 256
        self.aws_request_id = "8f5e4ce2-0000-4000-8000-000000000001"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/04/09/[$LATEST]0123456789abcdef"
        self._deadline = time.monotonic() + ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
