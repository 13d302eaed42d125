// Faults within the deadline: Redis stopped (SIGSTOP: connected, silent), killed (connection
// refused) and restarted empty (scripts and config gone). Each call ends within its bounds and
// onUnavailable decides; after a restart NOSCRIPT is recovered and a lost config is reported.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Guard, GuardUnavailable, StoreReset, Throttled } from "../dist/esm/index.mjs";
import { newNs, PyAdmin, RedisProc, sleep } from "./helpers.mjs";

const TIMEOUT = 150; // ms, every round trip
const CONNECT = 150; // ms, (re)connecting
// The bound each call must keep: connect wait + one command, plus scheduling slack on a
// shared, noisy machine (the point is "bounded", not a latency figure).
const BOUND = CONNECT + TIMEOUT + 1000;

const cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()();
});

async function setup(policy = "open") {
  const redis = await RedisProc.start();
  const admin = new PyAdmin(redis.url);
  const ns = newNs("f");
  await admin.call(ns, "put_function", ["f"], { max_concurrency: 5 });
  const g = Guard.fromUrl(redis.url, { namespace: ns, timeoutMs: TIMEOUT, connectTimeoutMs: CONNECT, onUnavailable: policy });
  cleanups.push(() => redis.cleanup(), () => admin.close(), () => g.close());
  await (await g.acquire("f")).release(); // connected, scripts loaded, config seen
  return { redis, admin, ns, g };
}

async function timed(p) {
  const t0 = performance.now();
  try {
    return { value: await p, ms: performance.now() - t0 };
  } catch (error) {
    return { error, ms: performance.now() - t0 };
  }
}

test("Redis stopped (SIGSTOP): open runs unguarded, closed raises, both within the deadline", async () => {
  const { redis, g } = await setup("open");
  redis.pause();
  try {
    const open = await timed(g.acquire("f"));
    assert.ok(open.value?.unguarded, String(open.error));
    assert.ok(open.ms < BOUND, `open took ${open.ms} ms`);
    const closed = await timed(g.acquire("f2", { context: undefined }).then(() => null));
    assert.ok(closed.ms < BOUND);
    const gc = Guard.fromUrl(redis.url, { namespace: g.namespace, timeoutMs: TIMEOUT, connectTimeoutMs: CONNECT, onUnavailable: "closed" });
    cleanups.push(() => gc.close());
    const c = await timed(gc.acquire("f"));
    assert.ok(c.error instanceof GuardUnavailable, String(c.error));
    assert.equal(c.error.function, "f");
    assert.ok(c.ms < BOUND, `closed took ${c.ms} ms`);
  } finally {
    redis.resume();
  }
  assert.deepEqual(g.unavailablePending(), { f: 1, f2: 1 });
  const l = await g.acquire("f");
  assert.ok(l.held, "back once Redis answers again");
  await l.release();
});

test("a held lease's renew and release during an outage raise GuardUnavailable within the deadline", async () => {
  const { redis, admin, ns, g } = await setup();
  const l = await g.acquire("f");
  redis.pause();
  try {
    const r = await timed(l.renew());
    assert.ok(r.error instanceof GuardUnavailable, String(r.error));
    assert.ok(r.ms < BOUND, `renew took ${r.ms} ms`);
    const rel = await timed(l.release());
    assert.ok(rel.error instanceof GuardUnavailable);
    assert.ok(rel.ms < BOUND, `release took ${rel.ms} ms`);
  } finally {
    redis.resume();
  }
  // the failed release is retried in the background once Redis answers again
  let inUse = 1;
  for (let i = 0; i < 60 && inUse !== 0; i++) {
    await sleep(100);
    inUse = (await admin.call(ns, "usage")).functions.f.in_use;
  }
  assert.equal(inUse, 0, "released in the background, not left to the TTL");
});

test("Redis killed: connection refused is unavailable within the deadline; reconnects when it is back", async () => {
  const { redis, admin, ns, g } = await setup("closed");
  await redis.stop("SIGKILL");
  for (let i = 0; i < 3; i++) {
    const r = await timed(g.acquire("f"));
    assert.ok(r.error instanceof GuardUnavailable, String(r.error));
    assert.ok(r.ms < BOUND, `attempt ${i} took ${r.ms} ms`);
  }
  await redis.start(); // same port, empty
  await admin.call(ns, "put_function", ["f"], { max_concurrency: 5 }); // limits re-applied
  let l = null;
  for (let i = 0; i < 20 && l === null; i++) {
    l = await g.acquire("f").catch(() => null);
    if (l === null) await sleep(50);
  }
  assert.ok(l?.held, "granted again after the restart (scripts reloaded after NOSCRIPT)");
  assert.equal((await admin.call(ns, "usage")).functions.f.in_use, 1);
  await l.release();
});

test("Redis restarted empty: NOSCRIPT is recovered and the lost config is a StoreReset, not a free-for-all", async () => {
  const { redis, admin, ns, g } = await setup("closed");
  const before = await g.acquire("f");
  await redis.stop("SIGTERM");
  await redis.start(); // empty: no scripts, no config, no leases
  let r;
  for (let i = 0; i < 20; i++) {
    r = await timed(g.acquire("f"));
    if (r.error instanceof StoreReset) break;
    await sleep(50); // still reconnecting
  }
  assert.ok(r.error instanceof StoreReset, String(r.error));
  assert.ok(r.ms < BOUND, `took ${r.ms} ms`);
  const c = redis.client();
  assert.equal(Number(await c.hlen(`guard:{${ns}}:lease`)), 1, "only the sentinel: the reset acquire gave its lease back");
  c.disconnect();
  // a fail-open Guard runs unguarded instead
  const go = Guard.fromUrl(redis.url, { namespace: ns, timeoutMs: 1000, onUnavailable: "open" });
  cleanups.push(() => go.close());
  await (await go.acquire("f")).release(); // never saw a config: no limits is the setting
  await admin.call(ns, "put_function", ["f"], { max_concurrency: 1 });
  const after = await g.acquire("f");
  assert.ok(after.held);
  assert.notEqual(after.leaseId, before.leaseId);
  assert.equal(await before.release(), false, "the old lease died with the old server");
  await assert.rejects(g.acquire("f"), (e) => e.name === "Throttled", "limits apply again");
});

test("quarantine (GUARD_QUARANTINE): after a restart that kept the data, grants wait out the longest lease TTL", async () => {
  const redis = await RedisProc.start(undefined, ["--appendonly", "yes", "--appendfsync", "always"]);
  const admin = new PyAdmin(redis.url);
  cleanups.push(() => redis.cleanup(), () => admin.close());
  const ns = newNs("q");
  await admin.call(ns, "put_function", ["f"], { max_concurrency: 5, lease_ttl_seconds: 30 });
  const g = Guard.fromUrl(redis.url, { namespace: ns, timeoutMs: 1000, connectTimeoutMs: 1000, quarantine: true, onUnavailable: "closed" });
  cleanups.push(() => g.close());
  const held = await g.acquire("f", { ttlMs: 20_000 });
  assert.ok(held.held, "no quarantine on the first server it sees");
  await redis.stop("SIGTERM");
  await redis.start(); // same dir: the AOF brings the data back, with a new run_id
  let r;
  for (let i = 0; i < 40; i++) {
    r = await timed(g.acquire("f"));
    if (!(r.error instanceof GuardUnavailable)) break;
    await sleep(50); // reconnecting
  }
  assert.ok(r.error instanceof Throttled, String(r.error));
  assert.equal(r.error.scope, "quarantine");
  assert.ok(r.error.retryAfter > 15 && r.error.retryAfter <= 30, String(r.error.retryAfter));
  assert.equal(await held.renew(), true, "a lease held across the restart is still held");
});

test("an acquire in doubt (sent, no answer in time) is given back in the background: no slot leaks", async () => {
  const { redis, admin, ns, g } = await setup("open");
  redis.pause();
  let l;
  try {
    l = await g.acquire("f", { ttlMs: 60_000 }); // sent; Redis runs it only when resumed
  } finally {
    redis.resume();
  }
  assert.ok(l.unguarded);
  // Redis now executes the queued acquire and grants a lease nobody holds; the Guard gives
  // that lease id back after a short delay instead of leaving the slot taken for 60 s.
  let inUse = 1;
  for (let i = 0; i < 60 && inUse !== 0; i++) {
    await sleep(100);
    inUse = (await admin.call(ns, "usage")).functions.f?.in_use ?? 0;
  }
  assert.equal(inUse, 0, "the lease granted after the timeout was released");
});
