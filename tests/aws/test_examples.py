"""The Python examples run as written (Lambda entry points and the Flask app)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import guard

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_server: Any, ns: str) -> str:
    monkeypatch.setenv("GUARD_REDIS_URL", redis_server.url)
    monkeypatch.setenv("GUARD_NAMESPACE", ns)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    return ns


def test_python_api_example(env: str, g: guard.Guard) -> None:
    mod = load(EXAMPLES / "python_api" / "handler.py", "example_api")
    out = mod.handler({"version": "2.0", "pathParameters": {"order_id": "9"}}, None)
    assert out["statusCode"] == 200 and json.loads(out["body"])["order_id"] == "9"
    r = mod.create_app().test_client().get("/orders/42")
    assert r.status_code == 200 and r.get_json()["order_id"] == "42"
    g.admin.put_function("orders-api", max_concurrency=0)
    assert mod.create_app().test_client().get("/orders/42").status_code == 429
    mod.g.close()


def test_sqs_consumer_example(env: str, g: guard.Guard) -> None:
    mod = load(EXAMPLES / "sqs_consumer" / "handler.py", "example_sqs")
    records = [{"messageId": "a", "body": "{}"}, {"messageId": "b", "body": "not json"}]
    assert mod.handler({"Records": records}, None) == {
        "batchItemFailures": [{"itemIdentifier": "b"}]
    }
    mod.g.close()
