"""guard.aws.sqs: raise vs report, and a visibility backoff that really hides the messages."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import boto3
import pytest

import guard
import guard.aws
from guard.aws import queues

REGION = "us-east-1"


def make_queue(name: str = "jobs") -> tuple[Any, str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return sqs, url, arn


def receive_event(sqs: Any, url: str, arn: str, n: int) -> dict[str, Any]:
    """Send `n` messages and receive them as Lambda's poller would, as an SQS event. They are
    received with a 1 s visibility timeout: without a backoff they are back 1 s later."""
    for i in range(n):
        sqs.send_message(QueueUrl=url, MessageBody=f"job {i}")
    records: list[dict[str, Any]] = []
    while len(records) < n:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)
        for m in got.get("Messages", []):
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": REGION,
                    "attributes": {},
                    "messageAttributes": {},
                }
            )
    return {"Records": records}


def visible(sqs: Any, url: str) -> int:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return len(got.get("Messages", []))


def throttle(g: guard.Guard) -> None:
    g.admin.put_function("consumer", max_concurrency=0)


def test_granted_runs_handler(g: guard.Guard) -> None:
    @guard.aws.sqs(g, "consumer", on_throttle="report")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": [], "n": len(event["Records"])}

    assert handler({"Records": [{"messageId": "a"}]}, None)["n"] == 1
    assert g.admin.usage()["functions"].get("consumer", {"in_use": 0})["in_use"] == 0


def test_raise_reraises_throttled(g: guard.Guard) -> None:
    throttle(g)

    @guard.aws.sqs(g, "consumer")
    def handler(event: dict[str, Any], context: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(guard.Throttled) as exc:
        handler({"Records": [{"messageId": "a"}]}, None)
    assert exc.value.scope == "function"


def test_report_returns_every_record(g: guard.Guard) -> None:
    throttle(g)

    @guard.aws.sqs(g, "consumer", on_throttle="report")
    def handler(event: dict[str, Any], context: Any) -> None:
        raise AssertionError("must not run")

    event = {"Records": [{"messageId": m} for m in ("a", "b", "c")]}
    assert handler(event, None) == {
        "batchItemFailures": [{"itemIdentifier": m} for m in ("a", "b", "c")]
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"on_throttle": "drop"}, "on_throttle"),
        ({"visibility_backoff": (5, 1)}, "visibility_backoff"),
        ({"visibility_backoff": (-1, 5)}, "visibility_backoff"),
        ({"visibility_backoff": (1, 50_000)}, "visibility_backoff"),
        ({"visibility_backoff": (1.5, 3)}, "visibility_backoff"),
        ({"visibility_backoff": 5}, "visibility_backoff"),
        ({"visibility_backoff": "5,6"}, "visibility_backoff"),
    ],
)
def test_bad_arguments(g: guard.Guard, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(guard.UsageError) as exc:
        guard.aws.sqs(g, "consumer", **kwargs)
    assert exc.value.field == field
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("on_throttle", ["raise", "report"])
def test_visibility_backoff_keeps_messages_hidden(
    g: guard.Guard, aws: None, on_throttle: str
) -> None:
    sqs, url, arn = make_queue()
    event = receive_event(sqs, url, arn, 12)  # two ChangeMessageVisibilityBatch calls
    throttle(g)

    @guard.aws.sqs(g, "consumer", on_throttle=on_throttle, visibility_backoff=(60, 120))
    def handler(event: dict[str, Any], context: Any) -> None:
        raise AssertionError("must not run")

    if on_throttle == "raise":
        with pytest.raises(guard.Throttled):
            handler(event, None)
    else:
        assert len(handler(event, None)["batchItemFailures"]) == 12
    assert visible(sqs, url) == 0  # received again at once: nothing, all 12 are hidden
    time.sleep(1.3)  # past the 1 s the poller's receive would have hidden them for
    assert visible(sqs, url) == 0


def test_zero_backoff_makes_messages_visible(g: guard.Guard, aws: None) -> None:
    """The control: the same call with (0, 0) really changes visibility (to 'now')."""
    sqs, url, arn = make_queue()
    event = receive_event(sqs, url, arn, 3)
    sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": 600}
            for i, r in enumerate(event["Records"])
        ],
    )
    assert visible(sqs, url) == 0
    throttle(g)
    handler = guard.aws.sqs(g, "consumer", on_throttle="report", visibility_backoff=(0, 0))(
        lambda e, c: None
    )
    handler(event, None)
    assert visible(sqs, url) == 3


def test_jitter_in_range_and_batches_of_ten() -> None:
    calls: list[dict[str, Any]] = []

    class Fake:
        def change_message_visibility_batch(self, **kw: Any) -> dict[str, Any]:
            calls.append(kw)
            return {"Successful": [{"Id": e["Id"]} for e in kw["Entries"]], "Failed": []}

    arn = f"arn:aws:sqs:{REGION}:123456789012:jobs"
    records = [
        {"messageId": str(i), "receiptHandle": f"h{i}", "eventSourceARN": arn} for i in range(25)
    ]
    n = queues.delay_messages(records, (30, 90), {}, client=Fake(), rng=random.Random(7))
    assert n == 25
    assert [len(c["Entries"]) for c in calls] == [10, 10, 5]
    seconds = [e["VisibilityTimeout"] for c in calls for e in c["Entries"]]
    assert all(30 <= s <= 90 for s in seconds) and len(set(seconds)) > 1
    assert {c["QueueUrl"] for c in calls} == {
        f"https://sqs.{REGION}.amazonaws.com/123456789012/jobs"
    }


def test_backoff_failures_are_logged_not_fatal(
    g: guard.Guard, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def change_message_visibility_batch(self, **kw: Any) -> dict[str, Any]:
            if kw["Entries"][0]["ReceiptHandle"] == "h0":
                raise RuntimeError("network down")
            return {
                "Successful": [],
                "Failed": [{"Id": "m0", "Code": "ReceiptHandleIsInvalid", "Message": "bad"}],
            }

    throttle(g)
    records = [
        {"messageId": "a", "receiptHandle": "h0", "eventSourceARN": "arn:aws:sqs:r:1:q1"},
        {"messageId": "b", "receiptHandle": "h1", "eventSourceARN": "arn:aws:sqs:r:1:q2"},
        {"messageId": "c"},  # no ARN: skipped, logged
    ]
    handler = guard.aws.sqs(
        g, "consumer", on_throttle="report", visibility_backoff=(1, 2), client=Broken()
    )(lambda e, c: None)
    with caplog.at_level(logging.WARNING, logger="guard.aws"):
        out = handler({"Records": records}, None)
    assert len(out["batchItemFailures"]) == 3
    text = caplog.text
    assert "network down" in text and "ReceiptHandleIsInvalid" in text and "message b" in text
    assert "record c has no eventSourceARN" in text


def test_queue_url_from_arn(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> None:
    assert queues.queue_url("arn:aws:sqs:eu-west-1:111122223333:orders.fifo") == (
        "https://sqs.eu-west-1.amazonaws.com/111122223333/orders.fifo"
    )
    assert queues.queue_url("arn:aws-cn:sqs:cn-north-1:111122223333:q") == (
        "https://sqs.cn-north-1.amazonaws.com.cn/111122223333/q"
    )
    with pytest.raises(ValueError):
        queues.queue_url("arn:aws:sns:us-east-1:1:topic")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566/")
    assert queues.queue_url("arn:aws:sqs:us-east-1:000000000000:q") == (
        "http://localhost:4566/000000000000/q"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://sqs.local:9324")
    assert queues.queue_url("arn:aws:sqs:us-east-1:000000000000:q").startswith(
        "http://sqs.local:9324/"
    )


def test_queue_url_resolved_with_get_queue_url(monkeypatch: pytest.MonkeyPatch, aws: None) -> None:
    sqs, url, arn = make_queue("resolved")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://elsewhere.invalid")
    assert queues.queue_url(arn, sqs) == url


def tenant(event: dict[str, Any], context: Any) -> str | None:
    """The batch's tenant: a message attribute of its (first) record."""
    attrs = event["Records"][0].get("messageAttributes") or {}
    return attrs.get("tenant", {}).get("stringValue")


def record(mid: str, tenant: str) -> dict[str, Any]:
    attrs = {"tenant": {"stringValue": tenant, "dataType": "String"}}
    return {"messageId": mid, "messageAttributes": attrs}


def test_per_tenant_consumer(g: guard.Guard) -> None:
    """key_max_concurrency per tenant under the function's total: a tenant at its cap has
    its batch reported back; other tenants run."""
    g.admin.put_function("consumer", max_concurrency=3, key_max_concurrency=1)
    busy = g.acquire("consumer", key="acme", ttl=30)
    ran: list[str] = []

    @guard.aws.sqs(g, "consumer", on_throttle="report", key=tenant)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ran.append(event["Records"][0]["messageId"])
        return {"batchItemFailures": []}

    assert handler({"Records": [record("m1", "acme")]}, None) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }
    assert handler({"Records": [record("m2", "globex")]}, None) == {"batchItemFailures": []}
    assert ran == ["m2"]
    others = [g.acquire("consumer", key=f"t{i}", ttl=30) for i in range(2)]
    with pytest.raises(guard.Throttled) as err:  # the total: 3 held
        g.acquire("consumer", key="t9", ttl=30)
    assert err.value.scope == "function"
    for lease in [busy, *others]:
        lease.release()
    assert handler({"Records": [record("m3", "acme")]}, None) == {"batchItemFailures": []}


def test_a_bad_tenant_key_fails_the_batch(g: guard.Guard) -> None:
    @guard.aws.sqs(g, "consumer", key=tenant)
    def handler(event: dict[str, Any], context: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(guard.UsageError) as err:
        handler({"Records": [record("m1", "bad tenant")]}, None)
    assert err.value.field == "key"
