"""An SQS-triggered handler guarded by guard.

When a limit is reached the whole batch is refused before any message is processed:
each message is hidden for a random 30-120 s (so refused work does not bounce straight back)
and reported in ``batchItemFailures`` — the event source mapping must have
``FunctionResponseTypes: ["ReportBatchItemFailures"]``. See docs/aws.md for raise vs report."""

from __future__ import annotations

import json
import logging
from typing import Any

import guard
import guard.aws

log = logging.getLogger()
g = guard.Guard.from_env()


@guard.aws.sqs(g, on_throttle="report", visibility_backoff=(30, 120))
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        try:
            process(json.loads(record["body"]))
        except Exception:
            log.exception("message %s failed", record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def process(job: dict[str, Any]) -> None:
    log.info("processing %s", job)
