// redis-semaphore (RedisSemaphore on ioredis): tryAcquire (one EVALSHA: ZREMRANGEBYSCORE,
// ZCARD, ZADD, PEXPIRE with the *client's* clock) and release (ZREM). The caller retries a
// refusal every retry_ms, which is what the library's own acquire() loop does (retryInterval).
// Auto-refresh is off (refreshInterval 0): the pair is shorter than the lock timeout.
import Redis from "ioredis";
import { Semaphore } from "redis-semaphore";
import { main } from "./common.mjs";

await main({
  name: "redis-semaphore",
  open: async (args) => {
    const client = new Redis({ host: args.host, port: args.port });
    await client.ping();
    return client;
  },
  session: (client, args) => ({
    acquire: async (leaseId) => {
      const sem = new Semaphore(client, args.key, args.limit, {
        lockTimeout: args.ttl_ms,
        acquireAttemptsLimit: 1,
        refreshInterval: 0,
        identifier: leaseId,
      });
      return (await sem.tryAcquire()) ? sem : null;
    },
    release: async (sem) => {
      await sem.release();
    },
  }),
  close: async (client) => {
    client.disconnect();
  },
});
