/** A held slot, and the background renewer for long holds. */
import type { Backend } from "./backend";
import { GuardError, GuardUnavailable } from "./errors";
import type { Releaser } from "./releaser";
import { checkTtlMs } from "./keys";

/** What a lease needs to renew and release itself: its store and namespace. */
export interface LeaseHandle {
  backend: Backend;
  namespace: string;
  /** Retries a release that could not reach the store (the slot is not left to the TTL). */
  releaser?: Releaser;
}

export interface LeaseFields {
  groups?: string[];
  expiresAt?: number;
  fence?: number;
  ttlMs?: number;
  shadowScope?: string | null;
}

/**
 * One slot of `function`. Release it when the work ends (or use `Guard.slot` / `Guard.limit`,
 * which do).
 *
 * `held` is false for an *unguarded* lease: the store was out of reach and the function's
 * `onUnavailable` was "open", or guard is disabled; such a lease runs the function without
 * counting it, and renew/release are no-ops. `expiresAt` is server time in epoch
 * milliseconds. `fence` increases with every grant in the namespace: pass it to a downstream
 * store to reject writes from a holder whose lease was lost.
 */
export class Lease {
  held: boolean;
  lost = false;
  readonly groups: string[];
  expiresAt: number;
  readonly fence: number;
  ttlMs: number;
  readonly shadowScope: string | null;
  private renewer: NodeJS.Timeout | null = null;

  constructor(
    private readonly handle: LeaseHandle | null,
    readonly function_: string,
    readonly leaseId: string,
    held: boolean,
    f: LeaseFields = {},
  ) {
    this.held = held;
    this.groups = f.groups ?? [];
    this.expiresAt = f.expiresAt ?? 0;
    this.fence = f.fence ?? 0;
    this.ttlMs = f.ttlMs ?? 0;
    this.shadowScope = f.shadowScope ?? null;
  }

  get function(): string {
    return this.function_;
  }

  get unguarded(): boolean {
    return !this.held && !this.lost;
  }

  /**
   * Extend the lease by its TTL (or `ttlMs`, capped by the function's lease_ttl_seconds).
   * False: the lease was lost (expired or released) and the slot may already belong to
   * someone else — stop the work.
   */
  async renew(ttlMs?: number): Promise<boolean> {
    const want = ttlMs === undefined ? 0 : Math.floor(checkTtlMs(ttlMs));
    if (!this.held || this.handle === null) return false;
    const r = await this.handle.backend.renew(this.handle.namespace, Buffer.from(this.leaseId, "hex"), want);
    if (r === null) {
      this.held = false;
      this.lost = true;
      this.stopRenewing();
      return false;
    }
    this.expiresAt = r.expiresMs;
    this.ttlMs = r.ttlMs;
    return true;
  }

  /** Give the slot back. Idempotent; true only when this call released a held lease. When
   * the store cannot be reached it throws GuardUnavailable, and the Guard keeps trying in the
   * background for a while (the lease's TTL frees the slot in the end anyway). */
  async release(): Promise<boolean> {
    this.stopRenewing();
    if (!this.held || this.handle === null) return false;
    this.held = false;
    try {
      return await this.handle.backend.release(this.handle.namespace, Buffer.from(this.leaseId, "hex"));
    } catch (err) {
      if (err instanceof GuardUnavailable) this.handle.releaser?.submit(this.leaseId);
      throw err;
    }
  }

  /** Renew every `everyMs` (default: a third of the TTL) until released or lost. The timer
   * does not keep the process alive; a renewal that fails to reach the store is tried again
   * next period (the TTL still runs). */
  startRenewing(everyMs?: number): void {
    if (!this.held || this.renewer !== null) return;
    const every = everyMs ?? Math.max(this.ttlMs / 3, 50);
    this.renewer = setInterval(() => {
      this.renew().catch((err: unknown) => {
        if (!(err instanceof GuardError)) throw err;
      });
    }, every);
    this.renewer.unref();
  }

  stopRenewing(): void {
    if (this.renewer !== null) {
      clearInterval(this.renewer);
      this.renewer = null;
    }
  }

  toString(): string {
    const state = this.held ? "held" : this.lost ? "lost" : "unguarded";
    return `<Lease ${this.function_} ${this.leaseId} ${state} fence=${this.fence}>`;
  }
}
