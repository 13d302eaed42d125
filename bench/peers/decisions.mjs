// Serial decisions for bench/callgrind_keyed.py: argv[2] is JSON {port, subject, ns, warm, n,
// keys}. Runs `warm` decisions, prints "warm", waits for one line on stdin (the instrumentation
// is switched on meanwhile), runs `n` decisions one after another, prints "done" and exits.
// subject: "guard-keyed" (guard's Node SDK, acquire(fn, {key}) + release, the namespace set up
// by bench/subjects.py _guard_keyed_setup), "guard" (the same with no key, _guard_setup),
// "guard-key-rate" (a key, only a per-key rate configured: callgrind_keyed.py) or
// "rate-limiter-flexible" (RateLimiterRedis.consume(key), nothing to release); "...-refused"
// subjects run with args.refuse.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import Redis from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";

const require = createRequire(import.meta.url);
const args = JSON.parse(process.argv[2]);
const url = `redis://127.0.0.1:${args.port}/0`;
const tenants = args.keys ?? 64;
const tenant = (i) => `tenant-${i % tenants}`;

let decide;
let close;
// args.refuse: every measured decision is a refusal (the warm-up spends each key's one point
// or token): the cost of saying no — guard's is one acquire, no release
if (args.subject.startsWith("rate-limiter-flexible")) {
  const client = new Redis({ host: "127.0.0.1", port: args.port, commandTimeout: 30_000 });
  const limiter = args.refuse
    ? new RateLimiterRedis({ storeClient: client, keyPrefix: `rlflx:${args.ns}`, points: 1, duration: 3600 })
    : new RateLimiterRedis({ storeClient: client, keyPrefix: `rlflx:${args.ns}`, points: 1_000_000_000, duration: 1 });
  decide = async (i) => {
    try {
      await limiter.consume(tenant(i));
      if (args.refuse && i >= tenants) throw new Error("granted, expected a refusal");
    } catch (e) {
      if (!(e instanceof RateLimiterRes) || !args.refuse) throw e;
    }
  };
  close = async () => client.disconnect();
} else {
  const { Guard, Throttled } = require("../../clients/node/dist/cjs/index.js");
  const g = Guard.fromUrl(url, { namespace: args.ns, timeoutMs: 30_000 });
  const keyed = args.subject !== "guard"; // guard-keyed, guard-key-rate, guard-keyed-refused
  decide = async (i) => {
    let lease;
    try {
      lease = await g.acquire("bench", { ttlMs: 30_000, key: keyed ? tenant(i) : undefined });
    } catch (e) {
      if (e instanceof Throttled && args.refuse) return;
      throw e;
    }
    if (!lease.held) throw new Error("not granted");
    await lease.release();
    if (args.refuse && i >= tenants) throw new Error("granted, expected a refusal");
  };
  close = async () => await g.close();
}

for (let i = 0; i < args.warm; i++) await decide(i);
console.log("warm");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
await lines.next();
for (let i = 0; i < args.n; i++) await decide(args.warm + i); // past the warm-up: a grant in a refusing run throws
console.log("done");
await close();
process.exit(0);
