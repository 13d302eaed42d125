"""Every AWS call an adapter makes is bounded by the invocation's remaining time, and every
client guard makes has short botocore timeouts: tested against an endpoint that accepts
connections and never answers."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import guard
import guard.aws
from guard.aws import _clients

ARN = "arn:aws:sqs:us-east-1:123456789012:jobs"


class Silent:
    """A loopback listener that accepts every connection and never sends a byte. Its accept
    loop polls a stop flag and gives up after `lifetime` seconds, so it cannot outlive a test."""

    def __init__(self, lifetime: float = 60.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.lifetime = lifetime
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        end = time.monotonic() + self.lifetime
        while not self.stop.is_set() and time.monotonic() < end:
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if ready:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()


@pytest.fixture
def silent(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Silent]:
    server = Silent()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield server
    server.close()


class Ctx:
    function_name = "consumer"

    def __init__(self, ms: int) -> None:
        self.deadline = time.monotonic() + ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def run_bounded(fn: Any, limit: float) -> tuple[bool, Any]:
    """Run `fn` in a daemon thread; (finished within `limit` s, its result or exception)."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit)
    return not t.is_alive(), out[0] if out else None


@pytest.mark.parametrize("on_throttle", ["raise", "report"])
def test_backoff_against_a_silent_endpoint_ends_within_the_remaining_time(
    g: guard.Guard, silent: Silent, on_throttle: str, caplog: pytest.LogCaptureFixture
) -> None:
    g.admin.put_function("consumer", max_concurrency=0)
    records = [
        {"messageId": m, "receiptHandle": f"h-{m}", "eventSourceARN": ARN} for m in ("a", "b")
    ]
    handler = guard.aws.sqs(g, on_throttle=on_throttle, visibility_backoff=(30, 60))(
        lambda e, c: None
    )
    ctx = Ctx(ms=4_000)
    with caplog.at_level(logging.WARNING, logger="guard.aws"):
        done, result = run_bounded(lambda: handler({"Records": records}, ctx), limit=4.0)
    assert done, "the refused batch outlived the invocation's remaining time"
    assert silent.accepted  # the calls did reach the silent endpoint
    if on_throttle == "raise":
        assert isinstance(result, guard.Throttled)
    else:
        assert result == {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}
    assert "jobs" in caplog.text  # the skipped backoff is logged, naming the queue


def test_backoff_with_too_little_time_left_makes_no_call(
    g: guard.Guard, silent: Silent, caplog: pytest.LogCaptureFixture
) -> None:
    g.admin.put_function("consumer", max_concurrency=0)
    handler = guard.aws.sqs(g, on_throttle="report", visibility_backoff=(30, 60))(lambda e, c: None)
    records = [{"messageId": "a", "receiptHandle": "h", "eventSourceARN": ARN}]
    with caplog.at_level(logging.WARNING, logger="guard.aws"):
        done, result = run_bounded(lambda: handler({"Records": records}, Ctx(ms=600)), 1.0)
    assert done and result == {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert not silent.accepted
    assert "not delayed" in caplog.text


def test_api_gateway_wait_is_capped_by_the_remaining_time(g: guard.Guard) -> None:
    g.admin.put_function("orders", max_concurrency=1)
    held = g.acquire("orders", ttl=30)
    handler = guard.aws.api_gateway(g, "orders", wait=30.0)(lambda e, c: {"statusCode": 200})
    done, result = run_bounded(lambda: handler({}, Ctx(ms=1_500)), limit=3.0)
    assert done and result["statusCode"] == 429
    held.release()


def test_clients_have_short_timeouts_and_few_retries(aws_env: None) -> None:
    sqs = _clients.client("sqs", region="us-east-1", timeouts=_clients.ADAPTER)
    cfg = sqs.meta.config
    assert cfg.connect_timeout <= 2 and cfg.read_timeout <= 2
    assert cfg.retries["total_max_attempts"] <= 3
    lam = _clients.client("lambda")  # the operator tool (guard sync-aws)
    cfg = lam.meta.config
    assert cfg.connect_timeout <= 10 and cfg.read_timeout <= 60
    assert cfg.retries["total_max_attempts"] <= 5
    assert _clients.Timeouts.of(lam) == _clients.OPERATOR


def test_sync_against_a_silent_endpoint_is_bounded(
    silent: Silent, monkeypatch: pytest.MonkeyPatch, g: guard.Guard
) -> None:
    """guard sync-aws with a short operator budget (GUARD_AWS_READ_TIMEOUT) fails each call
    after its timeouts instead of hanging for minutes."""
    from guard.aws.sync import run_sync

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.port}")
    monkeypatch.setenv("GUARD_AWS_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("GUARD_AWS_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("GUARD_AWS_MAX_ATTEMPTS", "1")
    g.admin.put_group("batch", max_concurrency=5, selector={"tags": {"tier": "batch"}})
    g.admin.put_function("ingest", max_concurrency=5)
    done, result = run_bounded(lambda: run_sync(g.admin, None, push_sqs_max=True), limit=5.0)
    assert done and not isinstance(result, BaseException), result
    assert len(result.errors) == 2  # the group's and the function's calls failed, reported


def test_a_given_client_is_used_only_when_its_timeouts_fit(
    g: guard.Guard, silent: Silent, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    from guard.aws import queues

    g.admin.put_function("consumer", max_concurrency=0)
    records = [{"messageId": "a", "receiptHandle": "h", "eventSourceARN": ARN}]
    slow = boto3.client("sqs", region_name="us-east-1")  # botocore defaults: 60 s reads
    short = boto3.client("sqs", region_name="us-east-1", config=queues.client_config())
    assert _clients.Timeouts.of(short) == _clients.ADAPTER
    for given, reaches in ((slow, False), (short, True)):
        handler = guard.aws.sqs(g, on_throttle="report", visibility_backoff=(30, 60), client=given)(
            lambda e, c: None
        )
        before = len(silent.accepted)
        done, _ = run_bounded(lambda h=handler: h({"Records": records}, Ctx(ms=8_000)), 8.0)
        assert done
        assert (len(silent.accepted) > before) is reaches


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("GUARD_AWS_CONNECT_TIMEOUT", "0"),
        ("GUARD_AWS_CONNECT_TIMEOUT", "301"),
        ("GUARD_AWS_READ_TIMEOUT", "soon"),
        ("GUARD_AWS_MAX_ATTEMPTS", "0"),
        ("GUARD_AWS_MAX_ATTEMPTS", "11"),
        ("GUARD_AWS_MAX_ATTEMPTS", "2.5"),
    ],
)
def test_operator_timeouts_from_env_are_bounded(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(guard.UsageError) as exc:
        _clients.Timeouts.from_env(_clients.OPERATOR)
    assert exc.value.field == var


def test_operator_timeouts_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_AWS_CONNECT_TIMEOUT", "300")
    monkeypatch.setenv("GUARD_AWS_READ_TIMEOUT", "0.25")
    monkeypatch.setenv("GUARD_AWS_MAX_ATTEMPTS", "10")
    assert _clients.Timeouts.from_env(_clients.OPERATOR) == _clients.Timeouts(300.0, 0.25, 10)
    monkeypatch.delenv("GUARD_AWS_MAX_ATTEMPTS")
    assert _clients.Timeouts.from_env(_clients.OPERATOR).attempts == _clients.OPERATOR.attempts
