/**
 * Where state lives: the Redis connection, the Lua scripts and their replies (the Node twin of
 * `guard/store.py`).
 *
 * Each script is defined once per client and run with EVALSHA; after a Redis restart or
 * failover (NOSCRIPT) ioredis runs it with EVAL, which loads it again. Every driver error is
 * wrapped into a `GuardError` here, so no raw ioredis error leaves the SDK.
 */
import type { Backend, Grant, Refusal, Renewal } from "./backend";
import { type Client, type ConnectOptions, connect } from "./connect";
import {
  ConflictError,
  GuardError,
  GuardUnavailable,
  isRateScope,
  ProtocolMismatch,
  StoreError,
  StoreReset,
  type ThrottleScope,
  UsageError,
} from "./errors";
import { leaseKeys, MAX_PENDING_NAMES, releaseChannel, WAITER_RETRY_MS } from "./keys";
import { LEASE_SCRIPTS, type LeaseScript, leaseScripts } from "./scripts";

export interface StoreOptions extends ConnectOptions {
  /** Turn on the failover quarantine (acquire_lease.lua ARGV[6]). */
  quarantine?: boolean;
}

type Reply = (string | number | Buffer | null)[];
type ScriptFn = (...args: (string | Buffer | number)[]) => Promise<unknown>;

const COMMAND = (n: LeaseScript): string => `guard_${n}`;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function str(v: unknown): string {
  return v === null || v === undefined ? "" : Buffer.isBuffer(v) ? v.toString() : String(v);
}

/** Errors after which one immediate retry on a fresh connection is safe and useful: the
 * connection broke (not a timeout: that request may still run, and retrying doubles the
 * wait). Retrying is safe: acquire is idempotent by lease id, release by nature. */
function brokenConnection(err: unknown): boolean {
  if (!(err instanceof Error) || err.name === "ReplyError") return false;
  const m = err.message;
  return (
    m.includes("Connection is closed") ||
    m.includes("Stream isn't writeable") ||
    m.includes("max retries per request") ||
    /ECONNRESET|EPIPE|ECONNREFUSED/.test(m)
  );
}

/** ARGV[5] of acquire_lease.lua: "fn=n,fn=n", at most MAX_PENDING_NAMES names (the Guard
 * sends no more; the rest wait for the next acquire). */
export function pendingArg(pending?: Map<string, number>): string {
  if (!pending || pending.size === 0) return "";
  if (pending.size > MAX_PENDING_NAMES) {
    throw new UsageError(`unavailable holds at most ${MAX_PENDING_NAMES} function names (got ${pending.size})`, "unavailable");
  }
  return [...pending].map(([f, n]) => `${f}=${n}`).join(",");
}

/** The GuardError for an ioredis error (the SDK's only error family). */
export function translate(what: string, err: unknown): GuardError {
  if (err instanceof GuardError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof Error && err.name === "ReplyError") {
    if (msg.startsWith("CONFLICT")) return new ConflictError(msg.replace(/^CONFLICT /, ""));
    if (msg.startsWith("PROTOCOL")) {
      return new ProtocolMismatch(`${what}: ${msg.replace(/^PROTOCOL /, "")}`, null, { cause: err });
    }
    return new StoreError(`${what}: store error: ${msg}`, null, { cause: err });
  }
  // a command that timed out was sent: Redis may still run it
  const inDoubt = msg.includes("Command timed out");
  return new GuardUnavailable(`${what}: store unreachable: ${msg}`, null, { cause: err, inDoubt });
}

export class RedisStore implements Backend {
  readonly client: Client;
  readonly quarantine: boolean;
  private readonly options: ConnectOptions;
  private readonly keys = new Map<string, string[]>();
  private readonly configured = new Set<string>();
  private readonly fns: Record<LeaseScript, ScriptFn>;
  private waiter: ReleaseWaiter | null = null;

  constructor(client: Client, options: StoreOptions) {
    this.client = client;
    this.options = { timeoutMs: options.timeoutMs, connectTimeoutMs: options.connectTimeoutMs };
    this.quarantine = options.quarantine ?? false;
    const src = leaseScripts();
    const fns = {} as Record<LeaseScript, ScriptFn>;
    for (const n of LEASE_SCRIPTS) {
      client.defineCommand(COMMAND(n), { numberOfKeys: 4, lua: src[n] });
      fns[n] = (client as unknown as Record<string, ScriptFn>)[COMMAND(n)].bind(client);
    }
    this.fns = fns;
  }

  static fromUrl(url: string, options: StoreOptions): RedisStore {
    return new RedisStore(connect(url, options), options);
  }

  /** Resolves once the client is connected, or rejects after the connect timeout. */
  ready(): Promise<void> {
    return whenReady(this.client, this.options.connectTimeoutMs);
  }

  private async run(name: LeaseScript, ns: string, args: (string | Buffer | number)[]): Promise<unknown> {
    let ks = this.keys.get(ns);
    if (ks === undefined) {
      ks = leaseKeys(ns);
      this.keys.set(ns, ks);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        if (this.client.status !== "ready") await this.ready();
        return await this.fns[name](...ks, ...args);
      } catch (err) {
        if (attempt === 0 && brokenConnection(err)) continue;
        throw translate(name, err);
      }
    }
  }

  /** One admission attempt (acquire_lease.lua). `waitMs` > 0 registers a waiter so that
   * releases publish; `pending` carries fail-open runs counted while the store was out of
   * reach; `key` is the acquire's key (ARGV[9]); `last` marks the last try of a wait that ran
   * out (ARGV[8]: a refusal drops the waiter's ticket). */
  async acquire(
    ns: string,
    fn: string,
    leaseId: Buffer,
    ttlMs: number,
    waitMs = 0,
    pending?: Map<string, number>,
    key?: string | null,
    last = false,
  ): Promise<Grant | Refusal> {
    let args: (string | Buffer | number)[] = [fn, leaseId, ttlMs];
    if (waitMs > 0 || (pending && pending.size > 0) || this.quarantine || last || key) {
      // the optional ARGV[4..8] as guard/store.py sends them (ARGV[7], require_config: off;
      // ARGV[8]: the last try of a wait that ran out drops its tickets and counts it)
      args = [
        fn,
        leaseId,
        ttlMs,
        Math.floor(waitMs),
        pendingArg(pending),
        this.quarantine ? "1" : "",
        "",
        last ? "1" : "",
      ];
      if (key) args.push(key); // ARGV[9]: the key
    }
    const r = (await this.run("acquire_lease", ns, args)) as Reply;
    const granted = Number(r[0]) > 0;
    if (!str(r[r.length - 1])) {
      await this.checkReset(ns, granted ? leaseId : null);
    } else if (!this.configured.has(ns)) {
      this.configured.add(ns);
    }
    if (granted) {
      return {
        granted: true,
        fence: Number(r[0]),
        expiresMs: Number(r[1]),
        ttlMs: Number(r[2]),
        groups: str(r[3]).split(",").filter((g) => g),
        onUnavailable: str(r[4]),
        shadowScope: str(r[5]),
      };
    }
    return { granted: false, scope: str(r[1]) as ThrottleScope, retryAfterMs: Number(r[2]), onUnavailable: str(r[3]) };
  }

  /**
   * `acquire`, waiting up to `waitMs` for a slot, first come, first served (a ticket in
   * Redis, docs/protocol.md "Waiting queues"). The wait registers with the Guard's one
   * subscription first and then retries, so no wake-up is missed; each sleep ends when a
   * release names this ticket (or its function with no queue, or a config write), or after
   * the refusal's retry_after, at most WAITER_RETRY_MS. A rate refusal is different: no
   * release frees a token, so it sleeps its retry_after (exact, server time) and retries —
   * or, when that is beyond the wait, gives up at once. The last try tells the script the
   * wait ran out (its ticket is dropped).
   */
  async acquireWaiting(
    ns: string,
    fn: string,
    leaseId: Buffer,
    ttlMs: number,
    waitMs: number,
    pending?: Map<string, number>,
    key?: string | null,
  ): Promise<Grant | Refusal> {
    const deadline = Date.now() + waitMs;
    let r = await this.acquire(ns, fn, leaseId, ttlMs, waitMs, pending, key);
    if (r.granted || waitMs <= 0) return r;
    let waiter: ReleaseWaiter | null = null;
    let me: Sleeper | null = null;
    try {
      let left: number;
      while ((left = deadline - Date.now()) > 0) {
        if (isRateScope(r.scope)) {
          if (r.retryAfterMs > left) break; // no token before the wait ends
          // at most WAITER_RETRY_MS, as below: a ticket taken by an earlier refusal stays live
          await sleep(Math.min(Math.max(r.retryAfterMs, 1), WAITER_RETRY_MS));
          if ((left = deadline - Date.now()) <= 0) break;
          r = await this.acquire(ns, fn, leaseId, ttlMs, left, undefined, key);
          if (r.granted) return r;
          continue;
        }
        if (!me) {
          waiter = await this.releaseWaiter(ns);
          me = waiter.register(releaseChannel(ns), fn, leaseId);
        }
        r = await this.acquire(ns, fn, leaseId, ttlMs, left, undefined, key);
        if (r.granted) return r;
        if (isRateScope(r.scope)) continue;
        // at most WAITER_RETRY_MS: each retry keeps this waiter's ticket (its place) live
        const nap = Math.min(Math.max(r.retryAfterMs, 1), WAITER_RETRY_MS);
        await me.wait(Math.min(deadline - Date.now(), nap));
      }
    } finally {
      if (waiter && me) waiter.unregister(me);
    }
    return await this.acquire(ns, fn, leaseId, ttlMs, 0, undefined, key, true);
  }

  private async checkReset(ns: string, leaseId: Buffer | null): Promise<void> {
    // A namespace this client saw configured has no config now: the store was reset. Its
    // limits are gone until someone re-applies them, so rather than run without limits this
    // is reported as unavailable (onUnavailable decides). A lease just granted is given back.
    if (!this.configured.has(ns)) return;
    if (leaseId !== null) await this.release(ns, leaseId).catch(() => false);
    throw new StoreReset(`namespace '${ns}' lost its configuration (store reset?)`);
  }

  async renew(ns: string, leaseId: Buffer, ttlMs = 0): Promise<Renewal | null> {
    const r = (await this.run("renew_lease", ns, [leaseId, Math.floor(ttlMs)])) as Reply;
    return Number(r[0]) === 1 ? { expiresMs: Number(r[1]), ttlMs: Number(r[2]) } : null;
  }

  async release(ns: string, leaseId: Buffer): Promise<boolean> {
    return Number(await this.run("release_lease", ns, [leaseId])) === 1;
  }

  /** Reap expired leases, then read the namespace's counters (field -> value): `fields` (e.g.
   * `f:<fn>`, `g:<group>`, `n:<fn>`), `a`, and those of the functions without a config
   * (read_usage.lua). A field missing from the result is 0. */
  async usageFields(ns: string, fields: string[] = []): Promise<Record<string, string>> {
    const flat = (await this.run("read_usage", ns, fields)) as Reply;
    const out: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) if (str(flat[i])) out[str(flat[i])] = str(flat[i + 1]);
    return out;
  }

  /** The Guard's one subscription (made on its first wait, kept for later ones). */
  private async releaseWaiter(ns: string): Promise<ReleaseWaiter> {
    if (this.waiter === null) this.waiter = new ReleaseWaiter(this.client.duplicate());
    try {
      await this.waiter.subscribe(releaseChannel(ns), this.options);
    } catch (err) {
      throw translate("wait", err);
    }
    return this.waiter;
  }

  async close(): Promise<void> {
    this.waiter?.close();
    this.client.disconnect();
  }
}

function whenReady(client: Client, timeoutMs: number): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  if (client.status === "end" || client.status === "close") {
    // gave up (or never started): connect again
    void (client as Client).connect().catch(() => {});
  }
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      client.off("ready", onReady);
      if (err) reject(err);
      else resolve();
    };
    const onReady = (): void => done();
    const timer = setTimeout(
      () => done(new Error(`not connected within ${timeoutMs} ms (status ${client.status})`)),
      timeoutMs,
    );
    client.on("ready", onReady);
  });
}

/** One waiting acquire: woken when a message names its ticket (its lease id). */
export class Sleeper {
  /** A wake-up came while it was not sleeping: its next wait returns at once. */
  woken = false;
  private resolve: ((woke: boolean) => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly channel: string,
    readonly fn: string,
    readonly id: string, // the lease id as binary (latin1) text
  ) {}

  wake(): void {
    if (this.resolve === null) {
      this.woken = true;
      return;
    }
    const r = this.resolve;
    this.resolve = null;
    if (this.timer !== null) clearTimeout(this.timer);
    r(true);
  }

  /** True when woken (now or since the last wait), false after `ms`. */
  wait(ms: number): Promise<boolean> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(() => {
        this.resolve = null;
        resolve(false);
      }, Math.max(ms, 0));
    });
  }
}

/**
 * The Guard's one subscription, dispatching release messages to its waiting acquires as
 * guard/store.py's ReleaseListener does (docs/protocol.md "Pub/sub wake-up"): `<fn>|<ids>`
 * wakes the waiters holding the named 16-byte lease ids, whatever function they wait for;
 * `<fn>` wakes one waiter of that function, or every waiter of the channel when none of
 * `fn` waits; `*` wakes all. A waiter is registered before its first retry, so a message
 * between a refusal and the sleep is never missed (it wakes the next sleep at once).
 */
export class ReleaseWaiter {
  private readonly channels = new Map<string, Promise<unknown>>();
  private readonly waiters = new Map<string, { byFn: Map<string, Set<Sleeper>>; byId: Map<string, Sleeper> }>();

  constructor(private readonly sub: Client) {
    sub.on("error", () => {});
    sub.on("messageBuffer", (channel: Buffer, data: Buffer) => this.dispatch(channel.toString(), data));
  }

  register(channel: string, fn: string, leaseId: Buffer): Sleeper {
    const s = new Sleeper(channel, fn, leaseId.toString("latin1"));
    let ch = this.waiters.get(channel);
    if (ch === undefined) {
      ch = { byFn: new Map(), byId: new Map() };
      this.waiters.set(channel, ch);
    }
    let set = ch.byFn.get(fn);
    if (set === undefined) {
      set = new Set();
      ch.byFn.set(fn, set);
    }
    set.add(s);
    ch.byId.set(s.id, s);
    return s;
  }

  unregister(s: Sleeper): void {
    const ch = this.waiters.get(s.channel);
    if (ch === undefined) return;
    const set = ch.byFn.get(s.fn);
    set?.delete(s);
    if (set !== undefined && set.size === 0) ch.byFn.delete(s.fn);
    if (ch.byId.get(s.id) === s) ch.byId.delete(s.id);
  }

  dispatch(channel: string, data: Buffer): void {
    const ch = this.waiters.get(channel);
    if (ch === undefined) return;
    const bar = data.indexOf(0x7c); // "|"
    if (bar >= 0) {
      // named tickets: 16-byte lease ids after the bar
      for (let i = bar + 1; i + 16 <= data.length; i += 16) {
        ch.byId.get(data.toString("latin1", i, i + 16))?.wake();
      }
      return;
    }
    const fn = data.toString();
    const same = fn === "*" ? undefined : ch.byFn.get(fn);
    if (same !== undefined) {
      for (const s of same) {
        if (!s.woken) {
          s.wake();
          return;
        }
      }
    }
    for (const set of ch.byFn.values()) for (const s of set) s.wake();
  }

  async subscribe(channel: string, o: ConnectOptions): Promise<void> {
    let p = this.channels.get(channel);
    if (p === undefined) {
      p = whenReady(this.sub, o.connectTimeoutMs).then(() => this.sub.subscribe(channel));
      this.channels.set(channel, p);
      p.catch(() => this.channels.delete(channel));
    }
    await withTimeout(p, o.connectTimeoutMs + o.timeoutMs, "subscribe");
  }

  close(): void {
    this.sub.disconnect();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
