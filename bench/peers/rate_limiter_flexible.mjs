// rate-limiter-flexible (RateLimiterRedis on ioredis): consume(key) per decision — one EVALSHA
// of its INCR+PEXPIRE script (a fixed window of `duration` seconds holding `points`). There is
// nothing to give back, so a "pair" of the common driver is one decision and release is a
// no-op. Keys: `tenant-<n>` for n drawn from args.keys tenants (the same as guard's keyed
// subject); points per key per second far above what a run reaches, so every decision is a
// grant (a rejection would come back as null and be retried by the driver like the others).
import Redis from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { main } from "./common.mjs";

await main({
  name: "rate-limiter-flexible",
  open: async (args) => {
    const client = new Redis({ host: args.host, port: args.port, enableOfflineQueue: true });
    await client.ping();
    return client;
  },
  session: (client, args) => {
    const limiter = new RateLimiterRedis({
      storeClient: client,
      keyPrefix: `rlflx:${args.key}`,
      points: args.rate_points ?? 1_000_000_000,
      duration: 1,
    });
    const tenants = args.keys ?? 64;
    return {
      acquire: async () => {
        try {
          return await limiter.consume(`tenant-${Math.floor(Math.random() * tenants)}`);
        } catch (e) {
          if (e instanceof RateLimiterRes) return null; // over the limit: refused
          throw e;
        }
      },
      release: async () => {},
    };
  },
  close: async (client) => {
    client.disconnect();
  },
});
