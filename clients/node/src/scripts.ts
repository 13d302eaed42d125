/**
 * The Lua scripts, assembled exactly as `guard/scripts.py` does (docs/protocol.md "Script
 * assembly"): each lease script is the line of constants `local DEFAULT_TTL_MS, BACKSTOP_MS,
 * … = …` (guard/scripts.py CONSTANTS, in that order), then `struct_compat.lua`, then
 * `common.lua`, then the script itself. The files are the repository's own `guard/lua/*.lua`,
 * copied into the package's `lua/` folder by its build (a test fails when the copies differ,
 * and one when an assembled script's SHA differs from the Python SDK's).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  BACKSTOP_TTL_MS,
  DEFAULT_LEASE_TTL_MS,
  FENCE_BLOCK,
  IDLE_CLEANUP_MS,
  MAX_PENDING_NAMES,
  MAX_UNCONFIGURED_NAMES,
  OTHER,
  TICKET_MS,
  PROTOCOL_VERSION,
} from "./keys";

export const LUA_DIR = join(__dirname, "..", "..", "lua");
export const LEASE_SCRIPTS = ["acquire_lease", "release_lease", "renew_lease", "read_usage"] as const;
export type LeaseScript = (typeof LEASE_SCRIPTS)[number];

/** The text of `lua/<name>.lua`, always ending with a newline (as guard/scripts.py reads it). */
function source(name: string): string {
  const text = readFileSync(join(LUA_DIR, `${name}.lua`), "utf8");
  return text.endsWith("\n") ? text : text + "\n";
}

let cache: Record<LeaseScript, string> | null = null;

/** The full source of every lease script (read once per process). */
export function leaseScripts(): Record<LeaseScript, string> {
  if (cache === null) {
    const consts: [string, string | number][] = [
      ["DEFAULT_TTL_MS", DEFAULT_LEASE_TTL_MS],
      ["BACKSTOP_MS", BACKSTOP_TTL_MS],
      ["IDLE_MS", IDLE_CLEANUP_MS],
      ["MAX_NAMED", MAX_UNCONFIGURED_NAMES],
      ["MAX_PENDING", MAX_PENDING_NAMES],
      ["FENCE_BLOCK", FENCE_BLOCK],
      ["TICKET_MS", TICKET_MS],
      ["OTHER", `'${OTHER}'`],
      ["PROTOCOL", `'${PROTOCOL_VERSION}'`], // a string: compared with the stored field `pv`
    ];
    const prelude =
      `local ${consts.map(([k]) => k).join(", ")} = ${consts.map(([, v]) => String(v)).join(", ")}\n` +
      source("struct_compat") +
      source("common");
    const out = {} as Record<LeaseScript, string>;
    for (const n of LEASE_SCRIPTS) out[n] = prelude + source(n);
    cache = out;
  }
  return cache;
}
