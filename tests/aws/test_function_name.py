"""`g.limit()`, `g.acquire()` and every adapter find the guarded name the same way: the
argument, then ``AWS_LAMBDA_FUNCTION_NAME``, then the Lambda context's ``function_name``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import guard
import guard.aws


class Ctx:
    def __init__(self, name: str | None) -> None:
        if name is not None:
            self.function_name = name

    def get_remaining_time_in_millis(self) -> int:
        return 5_000


def via_limit(g: guard.Guard, fn: str | None, ctx: Any) -> str:
    with pytest.raises(guard.Throttled) as exc:
        g.limit(fn)(lambda e, c: None)({}, ctx)
    return exc.value.function


def via_acquire(g: guard.Guard, fn: str | None, ctx: Any) -> str:
    with pytest.raises(guard.Throttled) as exc:
        g.acquire(fn, context=ctx)
    return exc.value.function


def via_api_gateway(g: guard.Guard, fn: str | None, ctx: Any) -> str:
    out = guard.aws.api_gateway(g, fn)(lambda e, c: None)({}, ctx)
    return str(json.loads(out["body"])["function"])


def via_sqs(g: guard.Guard, fn: str | None, ctx: Any) -> str:
    with pytest.raises(guard.Throttled) as exc:
        guard.aws.sqs(g, fn)(lambda e, c: None)({"Records": []}, ctx)
    return exc.value.function


WRAPPERS = pytest.mark.parametrize(
    "via",
    [via_limit, via_acquire, via_api_gateway, via_sqs],
    ids=["limit", "acquire", "api_gateway", "sqs"],
)


@pytest.fixture
def refusing(g: guard.Guard) -> guard.Guard:
    for name in ("from-arg", "from-env", "from-ctx"):
        g.admin.put_function(name, max_concurrency=0)
    return g


@WRAPPERS
@pytest.mark.parametrize(
    ("arg", "env", "ctx", "expected"),
    [
        ("from-arg", "from-env", "from-ctx", "from-arg"),
        (None, "from-env", "from-ctx", "from-env"),
        (None, None, "from-ctx", "from-ctx"),
    ],
    ids=["argument-first", "then-env", "then-context"],
)
def test_name_order(
    refusing: guard.Guard,
    monkeypatch: pytest.MonkeyPatch,
    via: Callable[[guard.Guard, str | None, Any], str],
    arg: str | None,
    env: str | None,
    ctx: str | None,
    expected: str,
) -> None:
    if env is None:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", env)
    assert via(refusing, arg, Ctx(ctx)) == expected


@WRAPPERS
def test_no_name_anywhere_is_a_usage_error(
    g: guard.Guard, monkeypatch: pytest.MonkeyPatch, via: Callable[..., str]
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    with pytest.raises(guard.UsageError) as exc:
        via(g, None, Ctx(None))
    assert exc.value.field == "function"
    assert "AWS_LAMBDA_FUNCTION_NAME" in str(exc.value) and "function_name" in str(exc.value)
