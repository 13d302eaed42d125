/**
 * HTTP mode: leases over guard's HTTP API (`docs/http.md`), for functions that cannot reach
 * Redis — the Node twin of `guard/http_backend.py`, on the built-in `fetch`.
 *
 * Answers map to the same results and errors as the Redis mode: 201 → grant, 429 → refusal,
 * 400 → UsageError, 404 → NotFound, 409 → ConflictError; a connection failure, a timeout or a
 * 5xx is a GuardUnavailable, so `onUnavailable` works identically. 401/403 are configuration
 * mistakes (a bad GUARD_TOKEN), raised as UsageError rather than failing open.
 */
import type { Backend, Grant, Refusal, Renewal } from "./backend";
import {
  ConflictError,
  type GuardError,
  GuardUnavailable,
  isRateScope,
  NotFound,
  StoreReset,
  type ThrottleScope,
  UsageError,
} from "./errors";

/** The server's bound on one request's wait (`guard.server.schemas`), ms. */
export const SERVER_MAX_WAIT_MS = 30_000;

type Doc = Record<string, unknown> | null;

export class HttpBackend implements Backend {
  readonly url: string;
  private readonly base: string;

  constructor(
    url: string,
    private readonly token: string | null,
    private readonly timeoutMs: number,
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`not an http(s) URL: ${JSON.stringify(url)}`, "url");
    }
    if ((u.protocol !== "http:" && u.protocol !== "https:") || !u.hostname) {
      throw new UsageError(`not an http(s) URL: ${JSON.stringify(url)}`, "url");
    }
    this.url = url;
    this.base = url.replace(/\/+$/, "");
  }

  /** One round trip: [status, parsed JSON or null]. Transport errors → GuardUnavailable. A
   * connection the server closed meanwhile is retried once (acquire is idempotent by lease
   * id; renew and release by nature); a timeout is not. */
  async request(method: string, path: string, body?: unknown, extraMs = 0): Promise<[number, Doc]> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(this.base + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs + extraMs),
        });
        const text = await res.text();
        let doc: Doc = null;
        try {
          doc = text ? (JSON.parse(text) as Doc) : null;
        } catch {
          doc = null;
        }
        return [res.status, doc];
      } catch (err) {
        const timeout = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (attempt === 0 && !timeout && (code === "ECONNRESET" || code === "UND_ERR_SOCKET")) continue;
        const msg = err instanceof Error ? `${err.message}${code ? ` (${code})` : ""}` : String(err);
        throw new GuardUnavailable(`guard service unreachable at ${this.url}: ${msg}`, null, { cause: err, inDoubt: timeout });
      }
    }
  }

  async acquire(
    ns: string,
    fn: string,
    leaseId: Buffer,
    ttlMs: number,
    waitMs = 0,
    pending?: Map<string, number>,
    key?: string | null,
  ): Promise<Grant | Refusal> {
    const wait = Math.min(waitMs, SERVER_MAX_WAIT_MS);
    const body: Record<string, unknown> = { function: fn, lease_id: leaseId.toString("hex") };
    if (key) body.key = key;
    if (ttlMs) body.ttl_seconds = ttlMs / 1000;
    if (wait > 0) body.wait_seconds = wait / 1000;
    // the wait left after this request (it comes back with the same lease id): the server
    // keeps the ticket, so the caller keeps its place in the queue (docs/http.md)
    const more = Math.min(waitMs - wait, 3_600_000);
    if (wait > 0 && more > 0) body.wait_more_seconds = Math.round(more) / 1000;
    if (pending && pending.size > 0) body.unavailable = Object.fromEntries(pending);
    const [status, doc] = await this.request("POST", `/v1/namespaces/${q(ns)}/leases`, body, wait);
    if (status === 201 && doc) {
      return {
        granted: true,
        fence: Number(doc.fence),
        expiresMs: Math.round(Number(doc.expires_at) * 1000),
        ttlMs: Math.round(Number(doc.ttl_seconds) * 1000),
        groups: (doc.groups as string[]) ?? [],
        onUnavailable: String(doc.on_unavailable ?? ""),
        shadowScope: String(doc.shadow_scope ?? ""),
      };
    }
    if (status === 429 && doc) {
      return {
        granted: false,
        scope: String(doc.scope ?? "account") as ThrottleScope,
        retryAfterMs: Math.round(Number(doc.retry_after ?? 1) * 1000),
        onUnavailable: String(doc.on_unavailable ?? ""),
      };
    }
    throw errorFor(status, doc);
  }

  /** The server waits (woken by releases, at most 30 s a request); longer waits loop with the
   * same lease id, each request sending the wait left after it (`wait_more_seconds`). A rate
   * refusal answered before the wait ran out is retried after its retry_after (no release
   * frees a token), or returned when that is beyond the wait. */
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
    let left: number;
    while (!r.granted && (left = deadline - Date.now()) > 0) {
      if (isRateScope(r.scope)) {
        const ms = r.retryAfterMs;
        if (ms > left) break;
        await new Promise((resolve) => setTimeout(resolve, Math.max(ms, 1)));
        if ((left = deadline - Date.now()) <= 0) break;
      }
      r = await this.acquire(ns, fn, leaseId, ttlMs, left, undefined, key);
    }
    return r;
  }

  async renew(ns: string, leaseId: Buffer, ttlMs = 0): Promise<Renewal | null> {
    const body = ttlMs ? { ttl_seconds: ttlMs / 1000 } : {};
    const path = `/v1/namespaces/${q(ns)}/leases/${leaseId.toString("hex")}/renew`;
    const [status, doc] = await this.request("POST", path, body);
    if (status === 200 && doc) {
      return { expiresMs: Math.round(Number(doc.expires_at) * 1000), ttlMs: Math.round(Number(doc.ttl_seconds) * 1000) };
    }
    if (status === 404) return null;
    throw errorFor(status, doc);
  }

  async release(ns: string, leaseId: Buffer): Promise<boolean> {
    const [status, doc] = await this.request("DELETE", `/v1/namespaces/${q(ns)}/leases/${leaseId.toString("hex")}`);
    if (status === 200 || status === 204) return true;
    if (status === 404) return false;
    throw errorFor(status, doc);
  }

  async close(): Promise<void> {}
}

function q(segment: string): string {
  return encodeURIComponent(segment);
}

/** The GuardError for a non-2xx answer (the same mapping as `guard.http_backend.error_for`). */
export function errorFor(status: number, doc: Doc): GuardError {
  const detail = doc && typeof doc.detail === "string" ? doc.detail : "";
  const field = doc && typeof doc.field === "string" ? doc.field : null;
  const msg = detail ? `HTTP ${status}: ${detail}` : `HTTP ${status}`;
  if (status === 401 || status === 403) return new UsageError(`${msg} (check GUARD_TOKEN)`, "token");
  if (status === 404) return new NotFound(msg, field);
  if (status === 409) return new ConflictError(msg, field);
  if (status >= 400 && status < 500) return new UsageError(msg, field);
  if (doc && String(doc.type ?? "").endsWith("store-reset")) return new StoreReset(msg);
  return new GuardUnavailable(msg);
}
