/**
 * The SDK: `Guard` takes a lease at handler entry and gives it back at exit (the Node twin of
 * `guard/client.py`).
 *
 * An acquire is one round trip (one EVALSHA); so is a release. Waiting for a slot subscribes
 * to the namespace's release channel (one subscription per Guard), so a release wakes the
 * waiter at once; the refusal's retry_after bounds each sleep in case none is published.
 */
import { randomFillSync } from "node:crypto";
import type { Backend, Grant } from "./backend";
import { GuardError, GuardUnavailable, StoreReset, Throttled, UsageError } from "./errors";
import { HttpBackend } from "./http";
import { MAX_LEASE_TTL_MS, MAX_PENDING_NAMES, checkKey, checkName, checkNamespace, checkTtlMs, parseLeaseId } from "./keys";
import { Lease } from "./lease";
import { Releaser } from "./releaser";
import { RedisStore } from "./store";

const TRUE = ["1", "true", "yes", "on"];
/** Default round-trip bounds, ms: Redis mode, and HTTP mode (a service under load). */
export const REDIS_TIMEOUT_MS = 50;
export const HTTP_TIMEOUT_MS = 2000;

/** The parts of a Lambda context the SDK reads. */
export interface LambdaContext {
  functionName?: string;
  getRemainingTimeInMillis?: () => number;
}

export type OnUnavailable = "open" | "closed";

export interface GuardOptions {
  /** default "default" */
  namespace?: string;
  /** What to do when the store cannot be reached and the function's own setting has never
   * been seen (cold start): "open" (default) runs unguarded, "closed" raises. */
  onUnavailable?: OnUnavailable;
  /** Added to a Lambda invocation's remaining time to form its lease TTL; default 2000. */
  leaseMarginMs?: number;
  /** The kill switch: every acquire returns an unguarded lease without any I/O. */
  disabled?: boolean;
}

export interface FromUrlOptions extends GuardOptions {
  /** HTTP mode: the bearer token (a client token is enough). */
  token?: string;
  /** Bound of every round trip, ms (as the Python SDK: 50 in Redis mode, 2000 in HTTP mode). */
  timeoutMs?: number;
  /** Bound of connecting, ms (default: timeoutMs). */
  connectTimeoutMs?: number;
  /** Redis mode: refuse grants for one lease TTL after a failover or restart. */
  quarantine?: boolean;
}

export interface AcquireOptions {
  /** Lease TTL, ms; default: the Lambda context's remaining time + leaseMarginMs, else the
   * function's lease_ttl_seconds. Always capped by the latter. */
  ttlMs?: number;
  /** Wait up to this long for a slot (woken by releases); default 0. */
  waitMs?: number;
  /** 32 hex digits (a UUID's dashes allowed) or 16 bytes; a retry with the same id is the
   * same lease, never a second slot. Default: 128 random bits. */
  leaseId?: string | Uint8Array;
  /** A Lambda context: names the function and sets the TTL from its deadline. */
  context?: LambdaContext;
  /** The acquire's key — a tenant, customer, API key — checked against the function's and
   * its groups' per-key limits (`key_max_concurrency`, `key_overrides`) and key rate
   * (`key_rate_per_second`). The name rule, 1-128 characters. Default (or null): no key. */
  key?: string | null;
}

/** `limit`'s key: one for every call, or a function of the call's `(event, context)`
 * returning its key (undefined or null: no key). */
export type KeyArg<E = unknown, C = unknown> = string | ((event: E, context: C) => string | null | undefined);

export interface LimitOptions<E = any, C = any> {
  function?: string;
  ttlMs?: number;
  waitMs?: number;
  /** Renew in the background (for holds longer than the TTL). */
  renew?: boolean;
  /** The call's key (see `AcquireOptions.key`): a string, or a function of (event, context). */
  key?: KeyArg<E, C>;
}

/** The guarded name, found the same way by `acquire`, `limit` and every adapter: the
 * argument, else AWS_LAMBDA_FUNCTION_NAME, else the Lambda context's functionName. */
export function functionName(fn?: string | null, context?: LambdaContext | null): string | null {
  return fn || process.env.AWS_LAMBDA_FUNCTION_NAME || context?.functionName || null;
}

/** Milliseconds left in a Lambda invocation (null without a context). */
export function remainingMs(context?: LambdaContext | null): number | null {
  const get = context?.getRemainingTimeInMillis;
  return typeof get === "function" ? Number(get.call(context)) : null;
}

// Lease ids: 128 random bits each, cut from a pool filled 256 ids at a time: one
// randomFillSync call per acquire showed as ~10% of an acquire+release pair's client CPU.
const POOL = Buffer.alloc(16 * 256);
let poolUsed = POOL.length;

function newLeaseId(): Buffer {
  if (poolUsed >= POOL.length) {
    randomFillSync(POOL);
    poolUsed = 0;
  }
  const id = Buffer.from(POOL.subarray(poolUsed, poolUsed + 16)); // a copy: the pool is refilled
  poolUsed += 16;
  return id;
}

function choice(v: unknown, what: string): OnUnavailable {
  if (v !== "open" && v !== "closed") {
    throw new UsageError(`${what} must be 'open' or 'closed' (got ${JSON.stringify(v)})`, what);
  }
  return v;
}

function positive(v: unknown, what: string, max = 600_000): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > max) {
    throw new UsageError(`${what} must be a number of milliseconds > 0 and <= ${max} (got ${String(v)})`, what);
  }
  return v;
}

/** The backend of a disabled Guard: acquire returns before reaching it, so it never connects. */
class DisabledBackend implements Backend {
  acquireWaiting(): Promise<Grant> {
    throw new UsageError("guard is disabled", "disabled");
  }
  async renew(): Promise<null> {
    return null;
  }
  async release(): Promise<boolean> {
    return false;
  }
  async close(): Promise<void> {}
}

/** Concurrency guard for one namespace. */
export class Guard {
  readonly backend: Backend;
  readonly namespace: string;
  readonly onUnavailable: OnUnavailable;
  readonly leaseMarginMs: number;
  readonly disabled: boolean;
  private readonly policies = new Map<string, string>();
  private pending = new Map<string, number>();
  private readonly names = new Set<string>();
  /** Gives back lease ids the store may hold without this client knowing (see releaser.ts). */
  readonly releaser: Releaser;

  constructor(backend: Backend, options: GuardOptions = {}) {
    this.backend = backend;
    this.namespace = checkNamespace(options.namespace ?? "default");
    this.onUnavailable = choice(options.onUnavailable ?? "open", "onUnavailable");
    this.leaseMarginMs = options.leaseMarginMs ?? 2000;
    if (!Number.isFinite(this.leaseMarginMs) || this.leaseMarginMs < 0 || this.leaseMarginMs > 600_000) {
      throw new UsageError(`leaseMarginMs must be 0..600000 (got ${this.leaseMarginMs})`, "leaseMarginMs");
    }
    this.disabled = options.disabled ?? false;
    this.releaser = new Releaser(backend, this.namespace);
  }

  /**
   * `redis://`, `rediss://`, `unix://`, `redis+sentinel://`, `redis+cluster://` (Redis mode)
   * or `http(s)://` (HTTP mode, with `token`). `timeoutMs` bounds every round trip.
   */
  static fromUrl(url: string, options: FromUrlOptions = {}): Guard {
    checkNamespace(options.namespace ?? "default"); // every check before a connection is made
    choice(options.onUnavailable ?? "open", "onUnavailable");
    if (options.disabled) return new Guard(new DisabledBackend(), options);
    const http = url.startsWith("http://") || url.startsWith("https://");
    const timeoutMs = positive(options.timeoutMs ?? (http ? HTTP_TIMEOUT_MS : REDIS_TIMEOUT_MS), "timeoutMs");
    const connectTimeoutMs = positive(options.connectTimeoutMs ?? timeoutMs, "connectTimeoutMs");
    let backend: Backend;
    if (http) {
      backend = new HttpBackend(url, options.token ?? null, timeoutMs);
    } else {
      backend = RedisStore.fromUrl(url, { timeoutMs, connectTimeoutMs, quarantine: options.quarantine });
    }
    return new Guard(backend, options);
  }

  /**
   * From GUARD_REDIS_URL (or GUARD_URL + GUARD_TOKEN), GUARD_NAMESPACE, GUARD_ON_UNAVAILABLE,
   * GUARD_TIMEOUT (seconds, as in Python), GUARD_QUARANTINE and the GUARD_DISABLED kill
   * switch. Options passed here win over the environment.
   */
  static fromEnv(options: FromUrlOptions = {}): Guard {
    const env = process.env;
    const url = env.GUARD_URL || env.GUARD_REDIS_URL;
    const disabled = TRUE.includes((env.GUARD_DISABLED ?? "").toLowerCase());
    if (!url && !disabled) throw new UsageError("set GUARD_REDIS_URL (or GUARD_URL) to reach the store", "url");
    const o: FromUrlOptions = {
      namespace: env.GUARD_NAMESPACE || "default",
      onUnavailable: (env.GUARD_ON_UNAVAILABLE || "open") as OnUnavailable,
      disabled,
    };
    if (env.GUARD_QUARANTINE !== undefined) o.quarantine = TRUE.includes(env.GUARD_QUARANTINE.toLowerCase());
    if (env.GUARD_TIMEOUT !== undefined) {
      const s = Number(env.GUARD_TIMEOUT);
      if (!Number.isFinite(s) || s <= 0 || s > 300) {
        throw new UsageError(`GUARD_TIMEOUT must be seconds in (0, 300], got ${JSON.stringify(env.GUARD_TIMEOUT)}`, "timeout");
      }
      o.timeoutMs = s * 1000;
    }
    if (env.GUARD_URL) o.token = env.GUARD_TOKEN;
    if (disabled) {
      process.emitWarning("GUARD_DISABLED is on: every acquire is granted without a limit", { code: "GUARD_DISABLED" });
    }
    return Guard.fromUrl(url || "redis://localhost:6379/0", { ...o, ...options }); // disabled: no connection
  }

  async close(): Promise<void> {
    this.releaser.close();
    await this.backend.close();
  }

  /**
   * Take a slot of `fn` or throw `Throttled` (after waiting up to `waitMs`). Without `fn`,
   * the name is found by `functionName` (environment, `context`). When the store is out of
   * reach: an unguarded lease ("open") or `GuardUnavailable` ("closed").
   */
  async acquire(fn?: string | null, options: AcquireOptions = {}): Promise<Lease> {
    const name = this.name(fn, options.context);
    const key = options.key ?? undefined;
    if (key !== undefined) checkKey(key);
    const raw = options.leaseId !== undefined ? parseLeaseId(options.leaseId) : newLeaseId();
    let ttlMs = options.ttlMs;
    if (ttlMs === undefined && options.context) {
      const left = remainingMs(options.context);
      if (left !== null && Number.isFinite(left)) ttlMs = Math.min(Math.max(left + this.leaseMarginMs, 1), MAX_LEASE_TTL_MS);
    }
    const ttl = ttlMs !== undefined ? Math.max(1, Math.round(checkTtlMs(ttlMs))) : 0;
    const waitMs = options.waitMs ?? 0;
    if (typeof waitMs !== "number" || !(waitMs >= 0) || !Number.isFinite(waitMs)) {
      throw new UsageError(`waitMs must be >= 0 milliseconds (got ${String(waitMs)})`, "waitMs");
    }
    const id = raw.toString("hex");
    if (this.disabled) return new Lease(null, name, id, false);
    if (options.leaseId !== undefined) this.releaser.cancel(id); // asked for again
    let r;
    try {
      r = await this.take(name, raw, ttl, waitMs, key);
    } catch (err) {
      if (err instanceof GuardUnavailable) {
        if (err.inDoubt) this.releaser.submit(id); // the store may have granted it: give it back
        return this.unavailable(name, id, err);
      }
      throw err;
    }
    if (!r.granted) throw new Throttled(name, r.scope, r.retryAfterMs / 1000);
    const g: Grant = r;
    return new Lease({ backend: this.backend, namespace: this.namespace, releaser: this.releaser }, name, id, true, {
      groups: g.groups,
      expiresAt: g.expiresMs,
      fence: g.fence,
      ttlMs: g.ttlMs,
      shadowScope: g.shadowScope || null,
    });
  }

  private async take(name: string, raw: Buffer, ttlMs: number, waitMs: number, key?: string) {
    let pending: Map<string, number> | undefined;
    if (this.pending.size > 0) {
      // fail-open runs to report with this acquire: at most MAX_PENDING_NAMES names a call,
      // the rest wait their turn
      pending = new Map();
      for (const [k, n] of this.pending) {
        if (pending.size >= MAX_PENDING_NAMES) break;
        pending.set(k, n);
      }
      for (const k of pending.keys()) this.pending.delete(k);
    }
    let r;
    try {
      r = await this.backend.acquireWaiting(this.namespace, name, raw, ttlMs, waitMs, pending, key);
    } catch (err) {
      // StoreReset: the store answered, so the counts it carried were recorded.
      if (pending && err instanceof GuardError && !(err instanceof StoreReset)) {
        for (const [k, n] of pending) this.pending.set(k, (this.pending.get(k) ?? 0) + n);
      }
      throw err;
    }
    if (r.onUnavailable) this.policies.set(name, r.onUnavailable);
    return r;
  }

  private unavailable(name: string, id: string, err: GuardUnavailable): Lease {
    if (this.policy(name) === "closed") {
      err.function_ = name;
      throw err;
    }
    this.pending.set(name, (this.pending.get(name) ?? 0) + 1); // reported with the next acquire
    return new Lease(null, name, id, false);
  }

  /** The onUnavailable policy this client applies to `fn` right now (the function's stored
   * setting once seen, else the Guard's). */
  policy(fn: string): string {
    return this.policies.get(fn) ?? this.onUnavailable;
  }

  /** Fail-open runs counted locally, not yet added to guard_unavailable_total. */
  unavailablePending(): Record<string, number> {
    return Object.fromEntries(this.pending);
  }

  /**
   * Hold a slot of `fn` while `work(lease)` runs; released in `finally` (a failed release is
   * left to the TTL: the work's outcome matters). `renew: true` renews in the background.
   */
  async slot<T>(
    fn: string | null | undefined,
    work: (lease: Lease) => Promise<T> | T,
    options: AcquireOptions & { renew?: boolean } = {},
  ): Promise<T> {
    const lease = await this.acquire(fn, options);
    if (options.renew) lease.startRenewing();
    try {
      return await work(lease);
    } finally {
      await lease.release().catch((err: unknown) => {
        if (!(err instanceof GuardError)) throw err;
      });
    }
  }

  /**
   * Wrap a Lambda `handler(event, context)`: a slot is held while it runs, its TTL the
   * context's remaining time plus leaseMarginMs, released in `finally`. The name defaults to
   * AWS_LAMBDA_FUNCTION_NAME, then context.functionName. A refusal throws `Throttled`.
   * `key`: a key for every call, or a function of `(event, context)` returning the call's
   * key (undefined or null: none), e.g. `(event) => event.requestContext.identity.apiKey`.
   */
  limit<E, C extends LambdaContext | undefined, R>(
    handler: (event: E, context: C) => Promise<R> | R,
    options: LimitOptions<E, C> = {},
  ): (event: E, context: C) => Promise<R> {
    const key = options.key;
    if (key !== undefined && key !== null && typeof key !== "function") checkKey(key);
    return async (event: E, context: C): Promise<R> =>
      await this.slot(options.function, () => handler(event, context), {
        ttlMs: options.ttlMs,
        waitMs: options.waitMs,
        context: context ?? undefined,
        renew: options.renew,
        key: typeof key === "function" ? key(event, context) : key,
      });
  }

  private name(fn?: string | null, context?: LambdaContext | null): string {
    const name = functionName(fn, context);
    if (!name) {
      throw new UsageError(
        "no function name: pass one, set AWS_LAMBDA_FUNCTION_NAME, or pass a Lambda context that has functionName",
        "function",
      );
    }
    if (!this.names.has(name)) {
      checkName(name, "function");
      if (this.names.size < 10_000) this.names.add(name);
    }
    return name;
  }
}
