"""SQS helpers for the `guard.aws.sqs` adapter: queue URLs from ARNs and the visibility backoff.

Imported only when a refused batch is delayed, so boto3 loads only then."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from typing import Any

from . import _clients

log = logging.getLogger("guard.aws")
BATCH = 10  # ChangeMessageVisibilityBatch takes at most 10 entries
DOMAINS = {"aws-cn": "amazonaws.com.cn"}


def parse_queue_arn(arn: str) -> tuple[str, str, str, str]:
    """``arn:<partition>:sqs:<region>:<account>:<name>`` → (partition, region, account, name)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return parts[1], parts[3], parts[4], parts[5]


def queue_url(arn: str, sqs_client: Any = None) -> str:
    """The queue URL for `arn`. Without an endpoint override it is derived (no API call):
    ``https://sqs.<region>.amazonaws.com/<account>/<name>``. With ``AWS_ENDPOINT_URL_SQS`` or
    ``AWS_ENDPOINT_URL`` set (LocalStack, moto server, a VPC endpoint) it is asked of
    ``GetQueueUrl``, falling back to ``<endpoint>/<account>/<name>``."""
    partition, region, account, name = parse_queue_arn(arn)
    endpoint = _clients.endpoint_url("sqs")
    if endpoint is None:
        return f"https://sqs.{region}.{DOMAINS.get(partition, 'amazonaws.com')}/{account}/{name}"
    if sqs_client is not None:
        try:
            url = sqs_client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
            return str(url["QueueUrl"])
        except Exception as exc:  # any failure: use the derived URL
            log.warning("get_queue_url(%s) failed (%s); deriving the URL", name, exc)
    return f"{endpoint.rstrip('/')}/{account}/{name}"


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def delay_messages(
    records: list[Mapping[str, Any]],
    backoff: tuple[int, int],
    clients: dict[str, Any],
    *,
    client: Any = None,
    rng: random.Random,
) -> int:
    """Hide each record's message for ``rng.randint(lo, hi)`` seconds. Returns how many were
    changed. Every failure (bad record, API error, failed entry) is logged and skipped: the
    backoff is a courtesy, the refusal itself must still be reported."""
    by_queue: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        arn, handle = r.get("eventSourceARN"), r.get("receiptHandle")
        if isinstance(arn, str) and isinstance(handle, str):
            by_queue.setdefault(arn, []).append(r)
        else:
            log.warning("record %s has no eventSourceARN/receiptHandle", r.get("messageId"))
    changed = 0
    for arn, recs in by_queue.items():
        try:
            region = parse_queue_arn(arn)[1]
            sqs = client or clients.get(region)
            if sqs is None:
                sqs = clients[region] = _clients.client("sqs", region=region)
            url = queue_url(arn, sqs)
        except Exception as exc:
            log.warning("visibility backoff skipped for %s: %s", arn, exc)
            continue
        for chunk in _chunks(recs, BATCH):
            entries = [
                {
                    "Id": f"m{i}",
                    "ReceiptHandle": r["receiptHandle"],
                    "VisibilityTimeout": rng.randint(*backoff),
                }
                for i, r in enumerate(chunk)
            ]
            try:
                out = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            except Exception as exc:
                log.warning("change_message_visibility_batch on %s failed: %s", url, exc)
                continue
            for f in out.get("Failed") or []:
                idx = int(str(f.get("Id", "m-1"))[1:])
                mid = chunk[idx].get("messageId") if 0 <= idx < len(chunk) else None
                log.warning(
                    "visibility backoff failed for message %s: %s %s",
                    mid, f.get("Code"), f.get("Message"),
                )  # fmt: skip
            changed += len(out.get("Successful") or [])
    return changed
