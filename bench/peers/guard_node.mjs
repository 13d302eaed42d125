// guard's Node SDK (clients/node, built by `make node-build`): Guard.acquire / Lease.release,
// one EVALSHA each, the same scripts as the Python SDK; account, group and function checked
// (the namespace is configured by the harness, bench/subjects.py `_guard_setup`). A refusal is
// retried every retry_ms by the common driver, like the other polling subjects.
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { main } from "./common.mjs";

const require = createRequire(import.meta.url);
const { Guard, Throttled } = require("../../clients/node/dist/cjs/index.js");
const FUNCTION = "bench"; // bench/subjects.py GUARD_FUNCTION
// args.keys (bench/subjects.py keyed subject): each acquire carries the key `tenant-<n>`, n
// drawn from that many tenants (per-key limits and key rate configured by its setup)

await main({
  name: "guard Node SDK",
  open: async (args) => {
    const g = Guard.fromUrl(`redis://${args.host}:${args.port}/0`, { namespace: args.key, timeoutMs: 5000, connectTimeoutMs: 60_000 });
    await g.backend.ready();
    return g;
  },
  session: (g, args) => ({
    acquire: async (leaseId) => {
      // the harness's ids are strings; guard's are 128 bits
      const id = createHash("md5").update(leaseId).digest();
      const key = args.keys ? `tenant-${Math.floor(Math.random() * args.keys)}` : undefined;
      try {
        return await g.acquire(args.function ?? FUNCTION, { ttlMs: args.ttl_ms, leaseId: id, key });
      } catch (e) {
        if (e instanceof Throttled) return null;
        throw e;
      }
    },
    release: async (lease) => {
      await lease.release();
    },
  }),
  close: async (g) => {
    await g.close();
  },
});
