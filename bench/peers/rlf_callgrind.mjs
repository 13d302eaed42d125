// rate-limiter-flexible (RateLimiterRedis on ioredis) for bench/callgrind_cost.py: one
// decision = one consume() (one EVALSHA of the library's Lua), on one key with a rate that
// never refuses. argv[2] is the Redis port; each stdin line "N" runs N decisions back to back
// and answers "done" (so the caller can switch instruction counting on and off around them).
import readline from "node:readline";
import Redis from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";

const client = new Redis({ host: "127.0.0.1", port: Number(process.argv[2]), enableOfflineQueue: true });
await client.ping();
const limiter = new RateLimiterRedis({ storeClient: client, keyPrefix: "rlf", points: 1_000_000_000, duration: 1 });
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const n = Number(line.trim());
  if (!n) break;
  for (let i = 0; i < n; i++) await limiter.consume("tenant-a", 1);
  process.stdout.write("done\n");
}
client.disconnect();
