/**
 * What a `Guard` needs from a store — the Redis backend (`store.ts`) or the HTTP client
 * (`http.ts`) — and the results both return. Times are milliseconds, server time.
 */
import type { ThrottleScope } from "./errors";

export interface Grant {
  granted: true;
  fence: number;
  expiresMs: number;
  ttlMs: number;
  groups: string[];
  /** The function's stored on_unavailable ("open" | "closed"), "" when unset. */
  onUnavailable: string;
  /** The level that would have refused in shadow mode, "" when none. */
  shadowScope: string;
}

export interface Refusal {
  granted: false;
  scope: ThrottleScope;
  retryAfterMs: number;
  onUnavailable: string;
}

export interface Renewal {
  expiresMs: number;
  ttlMs: number;
}

export interface Backend {
  /** Take a slot, waiting up to `waitMs` for one (woken by releases; a rate refusal by a
   * sleep of its retry_after). `key`: the acquire's key (per-key limits and key rate). */
  acquireWaiting(
    ns: string,
    fn: string,
    leaseId: Buffer,
    ttlMs: number,
    waitMs: number,
    pending?: Map<string, number>,
    key?: string | null,
  ): Promise<Grant | Refusal>;
  /** The new expiry, or null when the lease is not held any more (expired or released). */
  renew(ns: string, leaseId: Buffer, ttlMs?: number): Promise<Renewal | null>;
  /** True when the lease was held and is now released. */
  release(ns: string, leaseId: Buffer): Promise<boolean>;
  close(): Promise<void>;
}
