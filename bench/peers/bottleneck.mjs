// bottleneck with its Redis datastore on ioredis ("clustering"): every limiter with the same id
// shares one maxConcurrent. A pair is limiter.schedule(job): a submit script, a register script
// when the job is drained, the job, then a free script (awaited before schedule resolves), plus
// pub/sub messages that wake queued jobs in other limiters. Jobs queue instead of being
// refused, so there is no retry loop and `refused` stays 0. Each limiter has two connections
// (commands + subscriber).
import Bottleneck from "bottleneck";
import Redis from "ioredis";
import { main } from "./common.mjs";

await main({
  name: "bottleneck",
  connectionsPerResource: 2,
  open: async (args) => {
    const limiter = new Bottleneck({
      id: args.key,
      maxConcurrent: args.limit,
      datastore: "ioredis",
      Redis,
      clientOptions: { host: args.host, port: args.port },
    });
    limiter.on("error", (e) => console.error("bottleneck error:", e));
    await limiter.ready();
    return limiter;
  },
  session: (limiter) => ({
    run: (fn) => limiter.schedule(fn),
  }),
  close: async (limiter) => {
    await limiter.disconnect(true);
  },
});
