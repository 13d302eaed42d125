// Compiled (never run) by package.test.mjs: the published declarations type a CommonJS consumer.
import guard = require("guard-concurrency");

const g = guard.Guard.fromEnv({ onUnavailable: "closed" });
export const limited = g.limit(async (event: { n: number }) => event.n + 1, { function: "fn" });
