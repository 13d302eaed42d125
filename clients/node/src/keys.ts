/**
 * The naming rule for every Redis key and channel (the same as `guard/keys.py`) and the
 * bounds every SDK applies. Every key of a namespace carries the hash tag `{ns}`, so on Redis
 * Cluster a namespace lives in one slot and one script sees all its levels.
 */
import { UsageError } from "./errors";

export const PREFIX = "guard";
export const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$/;
export const NAMESPACE_RE = /^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$/;

/** ms: Lambda's longest timeout; the TTL of a lease whose function has no setting. */
export const DEFAULT_LEASE_TTL_MS = 900_000;
/** ms: the cap for any requested TTL (`MAX_LEASE_TTL` in keys.py). */
export const MAX_LEASE_TTL_MS = 86_400_000;
/** ms a namespace's lease and counter keys outlive inactivity. */
export const BACKSTOP_TTL_MS = 7 * 86_400_000;
/** Fences reserved in the cfg hash at a time (common.lua "fh"). */
export const FENCE_BLOCK = 4096;
/** ms a waiting ticket lives unless its waiter retries (guard/keys.py TICKET_TTL). */
export const TICKET_MS = 3000;
/** ms: the longest sleep of a waiter between retries, so its ticket stays live. */
export const WAITER_RETRY_MS = 1000;
/** Names in one acquire's fail-open count map (acquire_lease.lua ARGV[5]). */
export const MAX_PENDING_NAMES = 32;
/** Functions without a plan whose counters are kept by name. */
export const MAX_UNCONFIGURED_NAMES = 200;
/** ms after its last acquire an unconfigured name's counters are cleaned. */
export const IDLE_CLEANUP_MS = 86_400_000;
/**
 * The protocol major between clients and the scripts (docs/protocol.md "Versioning"; Python's
 * `guard.wire.PROTOCOL_VERSION`): given to the scripts as PROTOCOL, which refuse a namespace
 * whose stored formats (cfg field `pv`) are of another major with a "PROTOCOL ..." error.
 */
export const PROTOCOL_VERSION = 1;
/** Counter name for everything beyond those bounds (not a valid function name). */
export const OTHER = "~other";

/** KEYS for the lease scripts: cfg, use, exp, lease. */
export function leaseKeys(ns: string): [string, string, string, string] {
  const tag = `${PREFIX}:{${ns}}`;
  return [`${tag}:cfg`, `${tag}:use`, `${tag}:exp`, `${tag}:lease`];
}

/** The pub/sub channel releases (while someone waits) and config writes publish on. */
export function releaseChannel(ns: string): string {
  return `${PREFIX}:{${ns}}:released`;
}

export function checkName(value: unknown, what = "function"): string {
  if (typeof value !== "string" || !NAME_RE.test(value)) {
    throw new UsageError(
      `${what} must be 1-128 characters of letters, digits, '_', '-', '.' (got ${JSON.stringify(value)})`,
      what,
    );
  }
  return value;
}

/** A key of an acquire (a tenant, customer, API key): the name rule, 1-128 characters, as
 * `guard.model.check_key`. */
export function checkKey(value: unknown, what = "key"): string {
  return checkName(value, what);
}

export function checkNamespace(value: unknown): string {
  if (typeof value !== "string" || !NAMESPACE_RE.test(value)) {
    throw new UsageError(
      `namespace must be 1-64 characters of letters, digits, '_', '-', '.' (got ${JSON.stringify(value)})`,
      "namespace",
    );
  }
  return value;
}

/** A TTL in ms: > 0 and at most MAX_LEASE_TTL_MS (as `guard.model.check_ttl`, in ms); the
 * scripts keep whole milliseconds, so it is rounded, and at least 1 (`keys.ttl_ms`). */
export function checkTtlMs(value: unknown, what = "ttlMs"): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > MAX_LEASE_TTL_MS) {
    throw new UsageError(
      `${what} must be a number of milliseconds > 0 and <= ${MAX_LEASE_TTL_MS} (got ${String(value)})`,
      what,
    );
  }
  return value;
}

/** A lease id is 128 bits: 32 hex digits (a UUID's dashes are allowed) or 16 bytes. */
export function parseLeaseId(value: string | Uint8Array): Buffer {
  if (value instanceof Uint8Array && value.length === 16) return Buffer.from(value);
  if (typeof value === "string") {
    const hex = value.replace(/-/g, "");
    if (/^[0-9a-fA-F]{32}$/.test(hex)) return Buffer.from(hex, "hex");
  }
  throw new UsageError(
    `leaseId must be 32 hex digits (128 bits), got ${JSON.stringify(typeof value === "string" ? value : String(value))}`,
    "leaseId",
  );
}
