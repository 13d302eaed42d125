/**
 * Lambda handler wrappers that take a lease at entry and shape a refusal for the caller (the
 * Node twin of `guard/aws/adapters.py`).
 *
 * - `apiGateway`: API Gateway REST (payload 1.0), HTTP API (2.0) and function-URL events. A
 *   refusal is an HTTP answer — 429 with Retry-After, an RFC 9457 problem document — not an
 *   error: the client retries, and Lambda does not count a function error.
 * - `sqs`: an SQS-triggered handler. A refusal puts the messages back on the queue, reported
 *   as batch item failures or thrown, optionally hidden for a jittered backoff first.
 */
import { type Guard, type KeyArg, type LambdaContext, remainingMs } from "./guard";
import { checkKey } from "./keys";
import { GuardError, GuardUnavailable, Throttled, UsageError } from "./errors";
import type { Lease } from "./lease";
import { problemDocument, problemUri } from "./problems";
import { type DelayOptions, delayMessages, MAX_VISIBILITY, type SqsRecord } from "./sqs";

export const PROBLEM_THROTTLED = problemUri("throttled"); // the HTTP API's types and titles
export const PROBLEM_UNAVAILABLE = problemUri("store-unavailable");
/** ms kept back from the invocation's remaining time for answering after the adapter's own
 * work (a wait for a slot, the SQS backoff's calls): the refusal must still reach Lambda. */
export const DEADLINE_MARGIN_MS = 500;
/** ms for the whole SQS backoff when there is no Lambda context. */
export const NO_CONTEXT_BUDGET_MS = 10_000;

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: boolean;
}

/** When (Date.now() ms) the adapter's own work must be done; null without a context. */
export function deadline(context?: LambdaContext | null): number | null {
  const left = remainingMs(context);
  return left === null ? null : Date.now() + left - DEADLINE_MARGIN_MS;
}

/** `waitMs`, cut so a wait for a slot ends before the invocation's deadline. */
export function boundedWait(waitMs: number, context?: LambdaContext | null): number {
  const end = deadline(context);
  if (end === null || waitMs <= 0) return waitMs;
  return Math.max(0, Math.min(waitMs, end - Date.now()));
}

/** `Retry-After` is whole seconds; round up, and never say 0 (that invites a hot loop). */
export function retryAfterHeader(seconds: number): string {
  return String(Math.max(1, Math.ceil(seconds)));
}

/** An API Gateway / function-URL response carrying the problem document of type `slug`
 * (`problems.ts`: the same type and title the HTTP API uses). */
export function problemResponse(
  slug: string,
  detail: string,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): HttpResponse {
  const body = problemDocument(slug, detail, extra);
  return {
    statusCode: body.status as number,
    headers: { "Content-Type": "application/problem+json", ...headers },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}

/** The answer to a refused request: 429 for Throttled, 503 for GuardUnavailable (a function
 * that fails closed) — the same documents as the Python adapters. */
export function refusalResponse(err: Throttled | GuardUnavailable): HttpResponse {
  if (err instanceof Throttled) {
    return problemResponse(
      "throttled",
      err.message,
      { "Retry-After": retryAfterHeader(err.retryAfter) },
      { scope: err.scope, function: err.function, retry_after: err.retryAfter },
    );
  }
  return problemResponse(
    "store-unavailable",
    `the concurrency guard's store is unreachable and '${err.function}' fails closed`,
    {},
    { function: err.function },
  );
}

/** The key of one call from an adapter's `key` option (checked once when it is a string). */
export function keyResolver<E, C>(key: KeyArg<E, C> | null | undefined): (event: E, context: C) => string | undefined {
  if (key === undefined || key === null) return () => undefined;
  if (typeof key !== "function") {
    const k = checkKey(key);
    return () => k;
  }
  return (event, context) => key(event, context) ?? undefined;
}

async function releaseQuietly(lease: Lease): Promise<void> {
  try {
    await lease.release();
  } catch (err) {
    if (!(err instanceof GuardError)) throw err; // the TTL frees the slot
  }
}

export interface ApiGatewayOptions<E = any, C = any> {
  function?: string;
  /** Wait up to this long for a slot, cut to the invocation's deadline; default 0. */
  waitMs?: number;
  /** The request's key (per-key limits, key rate): a string, or a function of (event,
   * context), e.g. `(e) => e.requestContext.identity.apiKey`; undefined: no key. */
  key?: KeyArg<E, C>;
}

/**
 * Wrap `handler(event, context)` of an API Gateway (REST v1, HTTP v2) or function-URL
 * integration. A lease is held while it runs (TTL from the context's deadline). Throttled
 * becomes a 429 problem response with Retry-After, GuardUnavailable a 503; the handler does
 * not run then.
 */
export function apiGateway<E, C extends LambdaContext | undefined, R>(
  g: Guard,
  handler: (event: E, context: C) => Promise<R> | R,
  options: ApiGatewayOptions<E, C> = {},
): (event: E, context: C) => Promise<R | HttpResponse> {
  const keyOf = keyResolver(options.key);
  return async (event: E, context: C) => {
    let lease: Lease;
    try {
      lease = await g.acquire(options.function, {
        waitMs: boundedWait(options.waitMs ?? 0, context),
        context: context ?? undefined,
        key: keyOf(event, context),
      });
    } catch (err) {
      if (err instanceof Throttled || err instanceof GuardUnavailable) return refusalResponse(err);
      throw err;
    }
    try {
      return await handler(event, context);
    } finally {
      await releaseQuietly(lease);
    }
  };
}

export interface SqsOptions<E = any, C = any> extends Omit<DelayOptions, "deadline"> {
  function?: string;
  /** The batch's key (per-tenant limits: one lease per batch, so a batch of one tenant's
   * messages — one queue or message group per tenant): a string, or a function of (event,
   * context), e.g. `(e) => e.Records[0].messageAttributes.tenant.stringValue`. */
  key?: KeyArg<E, C>;
  /** "raise" (default): rethrow, the invocation fails and Lambda backs off its pollers;
   * "report": every record in batchItemFailures (needs ReportBatchItemFailures). */
  onThrottle?: "raise" | "report";
  /** [lo, hi] whole seconds: hide each refused message for a jittered lo..hi first. */
  visibilityBackoff?: [number, number];
}

export interface SqsEvent {
  Records?: SqsRecord[];
}

/**
 * Wrap an SQS-triggered `handler(event, context)`; one lease covers the batch. When refused
 * (Throttled, or GuardUnavailable for a function that fails closed): the visibility backoff
 * (when set) hides every message for a jittered lo..hi seconds, each AWS call ending before
 * the invocation's deadline (a failure is logged, never fatal); then "raise" rethrows and
 * "report" returns every record as a batch item failure.
 */
export function sqs<E extends SqsEvent, C extends LambdaContext | undefined, R>(
  g: Guard,
  handler: (event: E, context: C) => Promise<R> | R,
  options: SqsOptions<E, C> = {},
): (event: E, context: C) => Promise<R | { batchItemFailures: { itemIdentifier: string }[] }> {
  const keyOf = keyResolver(options.key);
  const onThrottle = options.onThrottle ?? "raise";
  if (onThrottle !== "raise" && onThrottle !== "report") {
    throw new UsageError(`onThrottle must be one of raise, report (got ${JSON.stringify(onThrottle)})`, "onThrottle");
  }
  const backoff = checkBackoff(options.visibilityBackoff);
  const log = options.logger ?? console;
  return async (event: E, context: C) => {
    let lease: Lease;
    try {
      lease = await g.acquire(options.function, { context: context ?? undefined, key: keyOf(event, context) });
    } catch (err) {
      if (!(err instanceof Throttled || err instanceof GuardUnavailable)) throw err;
      const records = [...(event?.Records ?? [])];
      if (backoff !== null && records.length > 0) {
        await delayMessages(records, backoff, {
          ...options,
          deadline: deadline(context) ?? Date.now() + NO_CONTEXT_BUDGET_MS,
        });
      }
      if (onThrottle === "raise") throw err;
      log.info(`guard refused a batch of ${records.length} record(s): ${err.message}`);
      return { batchItemFailures: records.map((r) => ({ itemIdentifier: String(r.messageId) })) };
    }
    try {
      return await handler(event, context);
    } finally {
      await releaseQuietly(lease);
    }
  };
}

function checkBackoff(value: unknown): [number, number] | null {
  if (value === undefined || value === null) return null;
  const ok =
    Array.isArray(value) &&
    value.length === 2 &&
    value.every((v) => Number.isInteger(v)) &&
    0 <= value[0] &&
    value[0] <= value[1] &&
    value[1] <= MAX_VISIBILITY;
  if (!ok) {
    throw new UsageError(
      `visibilityBackoff must be [lo, hi]: whole seconds with 0 <= lo <= hi <= ${MAX_VISIBILITY} (got ${JSON.stringify(value)})`,
      "visibilityBackoff",
    );
  }
  return [value[0], value[1]];
}
