/**
 * The Lua scripts, assembled exactly as `guard/store.py` does: each lease script is the line
 * `local DEFAULT_TTL_MS, BACKSTOP_MS = …`, then `struct_compat.lua`, then `common.lua`, then
 * the script itself. The files are the repository's own `guard/lua/*.lua`, copied into the
 * package's `lua/` folder by its build (a test fails when the copies differ).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BACKSTOP_TTL_MS, DEFAULT_LEASE_TTL_MS } from "./keys";

export const LUA_DIR = join(__dirname, "..", "..", "lua");
export const LEASE_SCRIPTS = ["acquire_lease", "release_lease", "renew_lease", "read_usage"] as const;
export type LeaseScript = (typeof LEASE_SCRIPTS)[number];

function source(name: string): string {
  return readFileSync(join(LUA_DIR, `${name}.lua`), "utf8");
}

let cache: Record<LeaseScript, string> | null = null;

/** The full source of every lease script (read once per process). */
export function leaseScripts(): Record<LeaseScript, string> {
  if (cache === null) {
    const prelude =
      `local DEFAULT_TTL_MS, BACKSTOP_MS = ${DEFAULT_LEASE_TTL_MS}, ${BACKSTOP_TTL_MS}\n` +
      source("struct_compat") +
      source("common");
    const out = {} as Record<LeaseScript, string>;
    for (const n of LEASE_SCRIPTS) out[n] = prelude + source(n);
    cache = out;
  }
  return cache;
}
