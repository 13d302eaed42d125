"""SQS helpers for the `guard.aws.sqs` adapter: queue URLs from ARNs and the visibility backoff,
whose every call ends before the invocation's deadline.

Imported only when a refused batch is delayed, so boto3 loads only then."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from . import _clients

log = logging.getLogger("guard.aws")
BATCH = 10  # ChangeMessageVisibilityBatch takes at most 10 entries
DOMAINS = {"aws-cn": "amazonaws.com.cn"}
# Clients to choose from, most retries first; a call uses the first whose worst case fits.
TIERS = (_clients.ADAPTER, _clients.ADAPTER_ONCE)
NO_CONTEXT_BUDGET = 10.0  # seconds for the whole backoff when there is no Lambda context


def client_config() -> Any:
    """A ``botocore.config.Config`` with the bounds of guard's own SQS clients (1 s connect,
    1 s read, 2 attempts), for a client passed as ``guard.aws.sqs(..., client=...)``."""
    return _clients.ADAPTER.config()


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


def _fitting_client(
    region: str, clients: dict[str, Any], given: Any, deadline: float
) -> Any | None:
    """An SQS client whose worst-case call ends before `deadline` (``time.monotonic()``), or
    None. A `given` client is used only when its own botocore timeouts fit (an object that is
    not a botocore client is taken as instant); otherwise the first of `TIERS` that fits,
    made once per region and tier."""
    if given is not None:
        bounds = _clients.Timeouts.of(given)
        return given if deadline - time.monotonic() > (bounds.worst() if bounds else 0.0) else None
    for tier in TIERS:
        if tier.worst() > deadline - time.monotonic():
            continue
        key = f"{region}/{tier.attempts}"
        if key not in clients:
            clients[key] = _clients.client("sqs", region=region, timeouts=tier)
        # making the first client loads boto3: check the time left again
        return clients[key] if tier.worst() <= deadline - time.monotonic() else None
    return None


def delay_messages(
    records: list[Mapping[str, Any]],
    backoff: tuple[int, int],
    clients: dict[str, Any],
    *,
    client: Any = None,
    rng: random.Random,
    deadline: float | None = None,
) -> int:
    """Hide each record's message for ``rng.randint(lo, hi)`` seconds. Returns how many were
    changed. Every call starts only if its worst case (botocore timeouts and retries) ends
    before `deadline` (``time.monotonic()``; default: `NO_CONTEXT_BUDGET` from now); messages
    left when time runs out are not delayed. Every failure (bad record, API error, failed
    entry, no time left) is logged and skipped: the backoff is a courtesy, the refusal itself
    must still be reported."""
    if deadline is None:
        deadline = time.monotonic() + NO_CONTEXT_BUDGET
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
            sqs = _fitting_client(region, clients, client, deadline)
            url = queue_url(arn, sqs) if sqs is not None else ""
        except Exception as exc:
            log.warning("visibility backoff skipped for %s: %s", arn, exc)
            continue
        for done, chunk in enumerate(_chunks(recs, BATCH)):
            sqs = _fitting_client(region, clients, client, deadline)
            if sqs is None:
                log.warning(
                    "visibility backoff: %d message(s) of %s not delayed: %.2f s left before "
                    "the invocation's deadline is too little for another call",
                    len(recs) - done * BATCH,
                    arn,
                    max(0.0, deadline - time.monotonic()),
                )
                break
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
                    mid,
                    f.get("Code"),
                    f.get("Message"),
                )
            changed += len(out.get("Successful") or [])
    return changed
