// HTTP mode against a live `guard serve` (the repository's server, from .venv) on the test
// redis-server: the same leases and errors as the Redis mode, for runtimes without Redis.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Guard, GuardUnavailable, NotFound, Throttled, UsageError } from "../dist/esm/index.mjs";
import { freePort, newNs, PYTHON, PyAdmin, RedisProc, sleep } from "./helpers.mjs";

const CLIENT_TOKEN = "node-client-token";
let redis, admin, serve, url;
const guards = [];

before(async () => {
  redis = await RedisProc.start();
  admin = new PyAdmin(redis.url);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  const env = { ...process.env, GUARD_REDIS_URL: redis.url, GUARD_ADMIN_TOKENS: "node-admin-token", GUARD_CLIENT_TOKENS: CLIENT_TOKEN, GUARD_LOG_LEVEL: "warning" };
  delete env.PROMETHEUS_MULTIPROC_DIR;
  serve = spawn(join(PYTHON, "..", "guard"), ["serve", "--bind", `127.0.0.1:${port}`, "--workers", "2"], { env, stdio: "ignore" });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {}
    if (i > 300 || serve.exitCode !== null) throw new Error("guard serve did not start");
    await sleep(100);
  }
});

after(async () => {
  for (const g of guards) await g.close();
  if (serve.exitCode === null) {
    serve.kill("SIGTERM");
    await once(serve, "exit");
  }
  await admin.close();
  await redis.cleanup();
});

function guard(ns, options = {}) {
  const g = Guard.fromUrl(url, { namespace: ns, token: CLIENT_TOKEN, timeoutMs: 5000, ...options });
  guards.push(g);
  return g;
}

test("HTTP mode: acquire, renew, release and Throttled, counted in the same store", async () => {
  const ns = newNs("h");
  await admin.call(ns, "put_function", ["f"], { max_concurrency: 1, lease_ttl_seconds: 60 });
  const g = guard(ns);
  const l = await g.acquire("f", { ttlMs: 5000 });
  assert.ok(l.held && l.fence >= 1 && l.ttlMs === 5000);
  assert.ok(Math.abs(l.expiresAt - Date.now() - 5000) < 1000);
  assert.equal((await admin.call(ns, "usage")).functions.f.in_use, 1);
  await assert.rejects(g.acquire("f"), (e) => e instanceof Throttled && e.scope === "function" && e.retryAfter > 0);
  assert.equal(await l.renew(120_000), true);
  assert.equal(l.ttlMs, 60_000);
  assert.equal(await l.release(), true);
  assert.equal(await l.renew(), false, "a released lease is lost");
  assert.equal((await admin.call(ns, "usage")).functions.f.in_use, 0);
});

test("HTTP mode: a wait is served by the server and woken by a release", async () => {
  const ns = newNs("h");
  await admin.call(ns, "put_function", ["w"], { max_concurrency: 1 });
  const g = guard(ns);
  const held = await g.acquire("w", { ttlMs: 60_000 });
  setTimeout(() => held.release(), 300);
  const t0 = Date.now();
  const l = await g.acquire("w", { waitMs: 5000 });
  assert.ok(l.held);
  assert.ok(Date.now() - t0 < 3000);
  await l.release();
});

test("HTTP mode: a bad token is a UsageError (not fail-open); an unreachable server follows onUnavailable", async () => {
  const ns = newNs("h");
  await assert.rejects(guard(ns, { token: "wrong" }).acquire("f"), (e) => e instanceof UsageError && e.field === "token");
  const dead = `http://127.0.0.1:${await freePort()}`;
  const open = Guard.fromUrl(dead, { namespace: ns, timeoutMs: 300 });
  assert.ok((await open.acquire("f")).unguarded);
  const closed = Guard.fromUrl(dead, { namespace: ns, timeoutMs: 300, onUnavailable: "closed" });
  await assert.rejects(closed.acquire("f"), (e) => e instanceof GuardUnavailable && e.function === "f");
  assert.throws(() => Guard.fromUrl("http://", {}), UsageError);
  // HTTP clients cannot create namespaces: a lease in one with no configuration is NotFound,
  // an error to see (as in Python), not an outage to fail open through
  await assert.rejects(guard(newNs("h")).acquire("f"), (e) => e instanceof NotFound && /Namespace not found|no configuration/i.test(e.message));
});
