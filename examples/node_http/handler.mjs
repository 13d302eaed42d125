// A Node.js Lambda handler that takes its guard lease over guard's HTTP API.
// Only Node's built-ins (fetch, crypto): nothing to npm install.
//
// Environment: GUARD_URL (e.g. https://guard.internal:8000), GUARD_TOKEN (a client token),
// GUARD_NAMESPACE (default "default"), GUARD_ON_UNAVAILABLE ("open" | "closed", default "open"),
// GUARD_TIMEOUT_MS (default 500). The guarded name is AWS_LAMBDA_FUNCTION_NAME.

import { randomUUID } from "node:crypto";

const LEASE_MARGIN_SECONDS = 2; // as the Python SDK: the lease outlives the deadline a little
const DEFAULT_TTL_SECONDS = 30; // without a Lambda context

function settings() {
  const env = process.env;
  return {
    url: (env.GUARD_URL || "").replace(/\/+$/, ""),
    token: env.GUARD_TOKEN || "",
    namespace: env.GUARD_NAMESPACE || "default",
    onUnavailable: env.GUARD_ON_UNAVAILABLE === "closed" ? "closed" : "open",
    timeoutMs: Number(env.GUARD_TIMEOUT_MS || 500),
  };
}

/** A refusal: `status` 429 (a limit) or 503 (guard unreachable, function fails closed). */
export class Refused extends Error {
  constructor(status, headers, body) {
    super(`guard refused with ${status}`);
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
}

function leasesUrl(s) {
  return `${s.url}/v1/namespaces/${encodeURIComponent(s.namespace)}/leases`;
}

/**
 * Take a slot of `fn`. Resolves to the lease ({lease_id, function, groups, expires_at, fence,
 * ttl_seconds}), to null when guard is unreachable and the policy is "open", or throws Refused.
 * The lease id is chosen here, so retrying after a lost answer cannot take a second slot.
 */
export async function acquire(fn, ttlSeconds, s = settings()) {
  const leaseId = randomUUID().replaceAll("-", ""); // 32 hex digits = 128 random bits
  const body = JSON.stringify({ function: fn, ttl_seconds: ttlSeconds, lease_id: leaseId });
  let res;
  try {
    res = await fetch(leasesUrl(s), {
      method: "POST",
      headers: { Authorization: `Bearer ${s.token}`, "Content-Type": "application/json" },
      body,
      signal: AbortSignal.timeout(s.timeoutMs),
    });
  } catch (err) {
    return unavailable(fn, s, err);
  }
  if (res.status === 201) return await res.json();
  if (res.status === 429) {
    const problem = await res.text();
    throw new Refused(
      429,
      { "Retry-After": res.headers.get("retry-after") || "1", "Content-Type": "application/problem+json" },
      problem,
    );
  }
  if (res.status >= 500) return unavailable(fn, s, new Error(`guard answered ${res.status}`));
  // 400/401/403/404: a bug or a misconfiguration, not an outage: fail loudly
  throw new Error(`guard: ${res.status} ${await res.text()}`);
}

function unavailable(fn, s, err) {
  console.warn(`guard unreachable for ${fn} (${err.message}); policy ${s.onUnavailable}`);
  if (s.onUnavailable === "open") return null;
  throw new Refused(
    503,
    { "Content-Type": "application/problem+json" },
    JSON.stringify({
      type: "urn:guard:problem:store-unavailable", title: "Store unavailable", status: 503,
      detail: `the concurrency guard is unreachable and ${fn} fails closed`, function: fn,
    }),
  );
}

/** Give the slot back. Idempotent; errors are logged only (the lease's TTL frees it anyway). */
export async function release(lease, s = settings()) {
  if (!lease) return false;
  try {
    const res = await fetch(`${leasesUrl(s)}/${lease.lease_id}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${s.token}` },
      signal: AbortSignal.timeout(s.timeoutMs),
    });
    return res.status === 204;
  } catch (err) {
    console.warn(`guard release failed (${err.message}); the lease expires on its own`);
    return false;
  }
}

/** Wrap `work(event, context, lease)` as an API Gateway handler: 429/503 when refused. */
export function guarded(work) {
  return async (event, context) => {
    const fn = process.env.AWS_LAMBDA_FUNCTION_NAME || context?.functionName;
    const left = context?.getRemainingTimeInMillis?.();
    const ttl = left === undefined ? DEFAULT_TTL_SECONDS : left / 1000 + LEASE_MARGIN_SECONDS;
    let lease;
    try {
      lease = await acquire(fn, ttl);
    } catch (err) {
      if (err instanceof Refused) return { statusCode: err.status, headers: err.headers, body: err.body };
      throw err;
    }
    try {
      return await work(event, context, lease);
    } finally {
      await release(lease);
    }
  };
}

export const handler = guarded(async (event, context, lease) => ({
  statusCode: 200,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({
    message: "hello from node",
    lease_id: lease?.lease_id ?? null,
    fence: lease?.fence ?? null,
    ttl_seconds: lease?.ttl_seconds ?? null,
  }),
}));
