"""Lambda handler decorators that take a lease at entry and shape a refusal for the caller.

- `api_gateway`: API Gateway REST (payload 1.0), HTTP API (2.0) and function-URL events. A
  refusal is an HTTP answer — 429 with ``Retry-After`` — not an error: the client retries, the
  invocation succeeds, and Lambda does not count it as a function error.
- `sqs`: an SQS-triggered handler. A refusal must put the messages back on the queue; how, and
  how soon they come back, is the caller's choice (docs/aws.md weighs the options).

Neither imports boto3 unless `visibility_backoff` is used."""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar, cast

from .. import problems
from ..client import Guard, KeyArg, remaining_seconds
from ..errors import GuardError, GuardUnavailable, Throttled, UsageError
from ..lease import Lease
from ..model import check_key

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("guard.aws")

PROBLEM_THROTTLED = problems.TYPES["throttled"].uri  # the HTTP API's types and titles
PROBLEM_UNAVAILABLE = problems.TYPES["store-unavailable"].uri
ON_THROTTLE = ("raise", "report")
MAX_VISIBILITY = 43_200  # SQS: 12 hours
# Seconds kept back from the invocation's remaining time for answering after the adapter's own
# work (a wait for a slot, the SQS backoff's calls): the refusal must still reach Lambda.
DEADLINE_MARGIN = 0.5


def deadline(context: Any) -> float | None:
    """When (``time.monotonic()``) the adapter's own work must be done: the invocation's
    remaining time less `DEADLINE_MARGIN`; None without a Lambda context."""
    left = remaining_seconds(context)
    return None if left is None else time.monotonic() + left - DEADLINE_MARGIN


def bounded_wait(wait: float, context: Any) -> float:
    """`wait`, cut so a wait for a slot ends before the invocation's deadline."""
    end = deadline(context)
    if end is None or wait <= 0:
        return wait
    return max(0.0, min(wait, end - time.monotonic()))


def check_key_arg(key: KeyArg) -> KeyArg:
    """An adapter's `key`: None, a key (checked now, naming ``key``), or a callable of
    ``(event, context)`` returning the call's key or None (checked at each call)."""
    if key is not None and not callable(key):
        check_key(key)
    return key


class BadKey(UsageError):
    """The key a `key` callable found in a request breaks the name rule (it comes from the
    caller: a header, a message attribute). The HTTP adapters answer 400 naming ``key``."""


def key_of(key: KeyArg, event: Any, context: Any) -> str | None:
    """The key of one call: `key` itself, or what the callable returns for it (checked:
    `BadKey` when it breaks the name rule)."""
    if not callable(key):
        return key
    k = key(event, context)
    if k is not None:
        try:
            check_key(k)
        except UsageError as exc:
            raise BadKey(str(exc), "key") from None
    return k


def admit(
    g: Guard, function: str | None, context: Any, wait: float = 0.0, key: str | None = None
) -> Lease:
    """Take the request's lease, as every HTTP adapter does: the name by `function_name`
    (argument, ``AWS_LAMBDA_FUNCTION_NAME``, ``context.function_name``), the TTL from the
    context's deadline, a `wait` cut to that deadline, `key` for per-key limits and key rates
    (None: none). Raises `Throttled` or `GuardUnavailable` (turn either into an answer with
    `refusal_response`)."""
    return g.acquire(function, wait=bounded_wait(wait, context), context=context, key=key)


def release(lease: Lease) -> None:
    """Give the lease back; a failure is left to the TTL (the handler's outcome matters)."""
    with suppress(GuardError):
        lease.release()


def _split(args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, Any]:
    event = kw.get("event", args[0] if args else None)
    context = kw.get("context", args[1] if len(args) > 1 else None)
    return event, context


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` is whole seconds; round up, and never say 0 (that invites a hot loop)."""
    return str(max(1, math.ceil(seconds)))


def problem_response(
    slug: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """An API Gateway / function-URL response carrying an RFC 9457 problem document of the
    type `slug` (`guard.problems`: the same type and title the HTTP API uses)."""
    body = problems.document(slug, detail, **extra)
    return {
        "statusCode": body["status"],
        "headers": {"Content-Type": "application/problem+json", **(headers or {})},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def throttled_response(exc: Throttled) -> dict[str, Any]:
    return problem_response(
        "throttled",
        str(exc),
        headers={"Retry-After": retry_after_header(exc.retry_after)},
        scope=exc.scope,
        function=exc.function,
        retry_after=exc.retry_after,
    )


def unavailable_response(exc: GuardUnavailable) -> dict[str, Any]:
    return problem_response(
        "store-unavailable",
        f"the concurrency guard's store is unreachable and {exc.function!r} fails closed",
        function=exc.function,
    )


def refusal_response(exc: Throttled | GuardUnavailable | BadKey) -> dict[str, Any]:
    """The answer to a refused request, in API Gateway's shape (``statusCode``, ``headers``,
    ``body``): 429 for `Throttled`, 503 for `GuardUnavailable`, 400 naming ``key`` for a
    `BadKey` the request carried. The framework integrations
    (`guard.aws.chalice`, `guard.aws.powertools`, `guard.aws.asgi`) translate this one answer
    into their own response objects, so every integration refuses the same way."""
    if isinstance(exc, Throttled):
        return throttled_response(exc)
    if isinstance(exc, BadKey):
        return problem_response("bad-request", str(exc), field="key")
    return unavailable_response(exc)


def api_gateway(
    g: Guard, function: str | None = None, *, wait: float = 0.0, key: KeyArg = None
) -> Callable[[F], F]:
    """Decorate ``handler(event, context)`` of an API Gateway (v1 or v2) or function-URL
    integration. A lease is held while the handler runs; its TTL follows the context's
    deadline. `Throttled` becomes a 429 problem response with ``Retry-After``, and
    `GuardUnavailable` (a function that fails closed) a 503; the handler does not run.
    `key`: a key for every request, or ``key(event, context)`` returning the request's key
    (e.g. its API key header) or None — per-key limits and key rates (docs/aws.md "Keys")."""
    check_key_arg(key)

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def guarded(*args: Any, **kw: Any) -> Any:
            event, context = _split(args, kw)
            try:
                lease = admit(g, function, context, wait, key_of(key, event, context))
            except (Throttled, GuardUnavailable, BadKey) as exc:
                return refusal_response(exc)
            return _run(lease, handler, args, kw)

        return cast(F, guarded)

    return wrap


def _run(lease: Lease, handler: Callable[..., Any], args: Any, kw: Any) -> Any:
    try:
        return handler(*args, **kw)
    finally:
        release(lease)


def _check_backoff(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
    if not ok or not 0 <= value[0] <= value[1] <= MAX_VISIBILITY:
        raise UsageError(
            "visibility_backoff must be (lo, hi): whole seconds with "
            f"0 <= lo <= hi <= {MAX_VISIBILITY} (got {value!r})",
            "visibility_backoff",
        )
    return int(value[0]), int(value[1])


def sqs(
    g: Guard,
    function: str | None = None,
    on_throttle: str = "raise",
    visibility_backoff: tuple[int, int] | None = None,
    *,
    client: Any = None,
    rng: random.Random | None = None,
    key: KeyArg = None,
) -> Callable[[F], F]:
    """Decorate an SQS-triggered ``handler(event, context)``; one lease covers the batch.
    `key`: a key for every batch, or ``key(event, context)`` returning the batch's key (e.g.
    the tenant of its records: use a batch size of 1, or FIFO message groups per tenant, so
    a batch holds one tenant) or None — per-key limits and key rates.

    When refused (`Throttled`, or `GuardUnavailable` for a function that fails closed):

    - ``visibility_backoff=(lo, hi)`` first hides every record's message for a jittered
      ``lo..hi`` seconds (``ChangeMessageVisibilityBatch``; a failure there is logged, never
      fatal), so the refused batch does not come straight back;
    - ``on_throttle="raise"`` re-raises: the invocation fails and Lambda backs off its pollers;
    - ``on_throttle="report"`` returns every record in ``batchItemFailures`` (the mapping needs
      ``ReportBatchItemFailures``): the invocation succeeds and the messages return.

    `client` is an SQS client to use (default: one boto3 client per region, made on first
    use); `rng` makes the jitter reproducible in tests."""
    if on_throttle not in ON_THROTTLE:
        raise UsageError(
            f"on_throttle must be one of {', '.join(ON_THROTTLE)} (got {on_throttle!r})",
            "on_throttle",
        )
    backoff = _check_backoff(visibility_backoff)
    check_key_arg(key)
    clients: dict[str, Any] = {}

    def refused(event: Any, context: Any, exc: GuardError) -> Any:
        records = list((event or {}).get("Records") or [])
        if backoff is not None and records:
            from .queues import delay_messages

            delay_messages(
                records,
                backoff,
                clients,
                client=client,
                rng=rng or random.Random(),
                deadline=deadline(context),
            )
        if on_throttle == "raise":
            raise exc
        log.info("guard refused a batch of %d record(s): %s", len(records), exc)
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def guarded(*args: Any, **kw: Any) -> Any:
            event, context = _split(args, kw)
            try:
                lease = g.acquire(function, context=context, key=key_of(key, event, context))
            except (Throttled, GuardUnavailable) as exc:
                return refused(event, context, exc)
            return _run(lease, handler, args, kw)

        return cast(F, guarded)

    return wrap
