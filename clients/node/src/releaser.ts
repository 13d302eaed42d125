/**
 * Gives lease ids back in the background when the store could not be told at once (the twin
 * of `guard.lease.Releaser`): an acquire whose answer never came (`inDoubt`: the store may
 * have granted the lease id this client chose), and a release that failed for a transient
 * reason. Each is retried with growing delays, at most `DELAYS.length` attempts (about 20 s in
 * all); at most `MAX_PENDING` lease ids wait at once. Timers are unref'd: they never keep a
 * process alive.
 */
import type { Backend } from "./backend";
import { GuardError } from "./errors";

export const DELAYS = [20, 50, 100, 250, 500, 1000, 2000, 4000, 5000, 7000];
export const MAX_PENDING = 1000;

export class Releaser {
  /** lease ids given up on (retries spent, or too many pending) */
  dropped = 0;
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly backend: Backend,
    private readonly namespace: string,
  ) {}

  /** Release `leaseId` (hex) in the background, from the first delay on. */
  submit(leaseId: string): void {
    if (this.pending.has(leaseId)) return;
    if (this.pending.size >= MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.schedule(leaseId, 0);
  }

  /** Asked for again (the same lease id): a pending give-back must not free it. */
  cancel(leaseId: string): void {
    const t = this.pending.get(leaseId);
    if (t !== undefined) {
      clearTimeout(t);
      this.pending.delete(leaseId);
    }
  }

  get size(): number {
    return this.pending.size;
  }

  private schedule(leaseId: string, attempt: number): void {
    const t = setTimeout(() => {
      this.backend.release(this.namespace, Buffer.from(leaseId, "hex")).then(
        () => this.pending.delete(leaseId), // released, or not held: either way done
        (err: unknown) => {
          if (this.pending.get(leaseId) !== t) return; // cancelled meanwhile
          if (err instanceof GuardError && attempt + 1 < DELAYS.length) this.schedule(leaseId, attempt + 1);
          else {
            this.pending.delete(leaseId);
            this.dropped++;
          }
        },
      );
    }, DELAYS[attempt]);
    t.unref();
    this.pending.set(leaseId, t);
  }

  close(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }
}
