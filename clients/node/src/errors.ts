/**
 * The one error hierarchy of the Node SDK, the same classes as the Python SDK's
 * `guard/errors.py`. Every error the SDK raises derives from `GuardError`; no raw ioredis or
 * fetch error leaves it (the driver's error is kept as `cause`).
 */

export class GuardError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A bad argument or setting. `field` names what was wrong (e.g. `ttlMs`). */
export class UsageError extends GuardError {
  constructor(
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/** A write that contradicts the stored settings, or a lease id held by another function. */
export class ConflictError extends GuardError {
  constructor(
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/** The named group, function, namespace or lease does not exist. */
export class NotFound extends GuardError {
  constructor(
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/**
 * The level that refused an acquire (`Throttled.scope`): a concurrency level — `"function"`,
 * `"group:<name>"`, `"account"`, `"quarantine"`, or per key (`acquire(fn, { key })`) `"key"`
 * (the key's cap at the function) and `"group-key:<name>"` (its cap in a group) — or a rate
 * level: `"rate:account"`, `"rate:group:<name>"`, `"rate:function"`, `"rate:key"`.
 */
export type ThrottleScope =
  | "function"
  | "account"
  | "quarantine"
  | "key"
  | `group:${string}`
  | `group-key:${string}`
  | "rate:account"
  | "rate:function"
  | "rate:key"
  | `rate:group:${string}`;

/** A rate refusal: no release will free it; a token is available after its retry_after. */
export function isRateScope(scope: string): boolean {
  return scope.startsWith("rate:");
}

/**
 * No slot: the level named by `scope` (see `ThrottleScope`) is at its limit. For a
 * concurrency level `retryAfter` is a hint in seconds (as in Python); for a rate level
 * (`rate`: true) it is exact — the server time until a token is available there, so retrying
 * then is granted when nothing else competes. `retryAfterMs` is the same in milliseconds.
 */
export class Throttled extends GuardError {
  readonly retryAfterMs: number;
  constructor(
    readonly function_: string,
    readonly scope: ThrottleScope,
    readonly retryAfter: number,
  ) {
    super(`'${function_}' throttled by ${scope} limit; retry after ${retryAfter.toFixed(3)}s`);
    this.retryAfterMs = Math.round(retryAfter * 1000);
  }

  /** The refused function's name (`function` is a reserved word for a parameter, not here). */
  get function(): string {
    return this.function_;
  }

  /** True for a rate refusal (`rate:...`): waiting `retryAfter` is what frees it. */
  get rate(): boolean {
    return isRateScope(this.scope);
  }
}

/**
 * The store could not be reached within the deadline and the function's `onUnavailable` is
 * `"closed"`. The driver's error is `cause`. `inDoubt` is true when the request was sent and
 * no answer came in time: the store may have carried it out.
 */
export class GuardUnavailable extends GuardError {
  readonly inDoubt: boolean;
  constructor(
    message: string,
    public function_: string | null = null,
    options?: { cause?: unknown; inDoubt?: boolean },
  ) {
    super(message, options);
    this.inDoubt = options?.inDoubt ?? false;
  }

  get function(): string | null {
    return this.function_;
  }
}

/** The store answered with an error guard cannot recover from. */
export class StoreError extends GuardUnavailable {}

/**
 * A namespace this client saw configured has no configuration any more: the store was reset
 * (restarted empty, flushed, failed over to an empty replica). Treated like an unreachable
 * store (`onUnavailable` decides); the acquire that found it gave its lease back.
 */
export class StoreReset extends GuardUnavailable {}

/**
 * The namespace's stored formats are of another protocol major version than this client's
 * scripts (docs/protocol.md "Versioning"): the script refused rather than misread them, and
 * wrote nothing. Upgrade the client (or re-apply the configuration with an admin of the
 * client's version). Handled like an unreachable store (`onUnavailable` decides).
 */
export class ProtocolMismatch extends StoreError {}
