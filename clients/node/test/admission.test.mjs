// Admission at each level, leases (renew, release, expiry, idempotent ids), waiting woken by
// the release channel and the SDK's argument bounds — against a real redis-server, configured
// through the Python SDK's admin (the reference implementation).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Guard, GuardUnavailable, Throttled, UsageError, ConflictError, ProtocolMismatch, RedisStore } from "../dist/esm/index.mjs";
import { newNs, serverFixture, sleep } from "./helpers.mjs";

const fx = serverFixture();
const guard = fx.guard;

async function usage(ns) {
  return await fx.admin.call(ns, "usage");
}

test("function level: max_concurrency slots, then Throttled naming function and scope", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["f"], { max_concurrency: 2 });
  const g = guard(ns);
  const a = await g.acquire("f");
  const b = await g.acquire("f");
  assert.ok(a.held && b.held && b.fence === a.fence + 1);
  await assert.rejects(g.acquire("f"), (e) => {
    assert.ok(e instanceof Throttled);
    assert.equal(e.function, "f");
    assert.equal(e.scope, "function");
    assert.ok(e.retryAfter >= 0.01 && e.retryAfter <= 60, String(e.retryAfter));
    return true;
  });
  assert.equal((await usage(ns)).functions.f.in_use, 2);
  assert.equal(await a.release(), true);
  assert.equal(await a.release(), false, "a second release is a no-op");
  const c = await g.acquire("f");
  assert.ok(c.held);
  await b.release();
  await c.release();
  assert.equal((await usage(ns)).functions.f.in_use, 0);
});

test("group level and account level (with another group's unused reserve held back)", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "set_namespace", [], { max_concurrency: 4 });
  await fx.admin.call(ns, "put_group", ["etl"], { max_concurrency: 2, members: ["ingest", "transform"] });
  await fx.admin.call(ns, "put_group", ["api"], { reserved: 1, members: ["login"] });
  const g = guard(ns);
  const i1 = await g.acquire("ingest");
  assert.deepEqual(i1.groups, ["etl"]);
  await g.acquire("transform");
  await assert.rejects(g.acquire("ingest"), (e) => e instanceof Throttled && e.scope === "group:etl");
  await g.acquire("adhoc");
  // account: 4 - api's unused reserve 1 = 3 for everyone else, and 3 are held
  await assert.rejects(g.acquire("adhoc"), (e) => e instanceof Throttled && e.scope === "account");
  const login = await g.acquire("login"); // the reserve is api's
  assert.deepEqual(login.groups, ["api"]);
  await assert.rejects(g.acquire("login"), (e) => e instanceof Throttled && e.scope === "account");
  const u = await usage(ns);
  assert.equal(u.account.in_use, 4);
  assert.equal(u.groups.etl.in_use, 2);
});

test("shadow mode grants and reports the level that would have refused", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["s"], { max_concurrency: 1, mode: "shadow" });
  const g = guard(ns);
  const a = await g.acquire("s");
  const b = await g.acquire("s");
  assert.equal(a.shadowScope, null);
  assert.equal(b.shadowScope, "function");
  assert.ok(b.held);
});

test("renew extends (capped by lease_ttl_seconds), a lost lease reports false, expiry frees the slot", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["r"], { max_concurrency: 1, lease_ttl_seconds: 10 });
  const g = guard(ns);
  const l = await g.acquire("r", { ttlMs: 300 });
  assert.equal(l.ttlMs, 300);
  assert.ok(Math.abs(l.expiresAt - Date.now() - 300) < 200, "expiresAt is epoch ms");
  assert.equal(await l.renew(60_000), true);
  assert.equal(l.ttlMs, 10_000, "capped by lease_ttl_seconds");
  assert.equal(await l.renew(200), true);
  assert.equal(l.ttlMs, 200);
  await sleep(350);
  assert.equal(await l.renew(), false, "expired: lost, never re-created");
  assert.ok(l.lost && !l.held && !l.unguarded);
  const next = await g.acquire("r", { ttlMs: 1000 });
  assert.ok(next.held, "the expired lease's slot is free again");
  assert.equal((await usage(ns)).functions.r.in_use, 1);
});

test("startRenewing keeps a short lease alive past its TTL", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["long"], { max_concurrency: 1 });
  const g = guard(ns);
  const l = await g.acquire("long", { ttlMs: 150 });
  l.startRenewing(40);
  await sleep(400);
  await assert.rejects(g.acquire("long"), Throttled);
  assert.equal(await l.release(), true);
});

test("a lease id is idempotent: a retried acquire is the same lease, not a second slot", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["i"], { max_concurrency: 1 });
  const g = guard(ns);
  const id = "0123456789abcdef0123456789ABCDEF";
  const a = await g.acquire("i", { leaseId: id });
  const b = await g.acquire("i", { leaseId: "01234567-89ab-cdef-0123-456789abcdef" });
  assert.equal(a.leaseId, id.toLowerCase());
  assert.equal(b.leaseId, a.leaseId);
  assert.equal(b.fence, a.fence);
  assert.equal((await usage(ns)).functions.i.in_use, 1);
  await assert.rejects(g.acquire("other", { leaseId: id }), ConflictError);
});

test("a wait is woken by a release (pub/sub), not by polling", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["w"], { max_concurrency: 1 });
  const g = guard(ns);
  const other = guard(ns);
  const held = await other.acquire("w", { ttlMs: 60_000 });
  const t0 = Date.now();
  setTimeout(() => held.release(), 300);
  const l = await g.acquire("w", { waitMs: 5000 });
  const waited = Date.now() - t0;
  assert.ok(l.held);
  // retry_after (no hold history: until the held lease's expiry, 60 s; clamped) is far
  // longer: only the published release can have woken the waiter
  assert.ok(waited >= 290 && waited < 3000, `waited ${waited} ms`);
  await l.release();
});

test("a wait that no release ends throws Throttled after waitMs", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["w2"], { max_concurrency: 0 });
  const g = guard(ns);
  const t0 = Date.now();
  await assert.rejects(g.acquire("w2", { waitMs: 300 }), (e) => e instanceof Throttled && e.scope === "function");
  const took = Date.now() - t0;
  assert.ok(took >= 290 && took < 2000, `took ${took} ms`);
});

test("one subscription per Guard, however many waits", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["w3"], { max_concurrency: 0 });
  const g = guard(ns);
  await Promise.all([1, 2, 3].map(() => g.acquire("w3", { waitMs: 100 }).catch((e) => e)));
  await g.acquire("w3", { waitMs: 50 }).catch((e) => e);
  const c = fx.redis.client();
  const channels = await c.call("PUBSUB", "NUMSUB", `guard:{${ns}}:released`);
  c.disconnect();
  assert.equal(Number(channels[1]), 1);
});

test("the function's stored on_unavailable is remembered and applied when the store is unreachable", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["c"], { on_unavailable: "closed" });
  const g = guard(ns, { onUnavailable: "open" });
  assert.equal(g.policy("c"), "open");
  await (await g.acquire("c")).release();
  assert.equal(g.policy("c"), "closed");
});

test("a namespace stored by another protocol major: ProtocolMismatch (closed) or unguarded (open), nothing written", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["p"], { max_concurrency: 1 });
  const c = fx.redis.client();
  try {
    await c.hset(`guard:{${ns}}:cfg`, "pv", "2"); // written by a newer SDK (docs/protocol.md "Versioning")
    const closed = guard(ns, { onUnavailable: "closed" });
    await assert.rejects(closed.acquire("p"), (e) => {
      assert.ok(e instanceof ProtocolMismatch && e instanceof GuardUnavailable, String(e));
      assert.equal(e.function, "p");
      assert.match(e.message, /^acquire_lease: namespace holds protocol 2 formats; this client speaks protocol 1/);
      return true;
    });
    const open = guard(ns, { onUnavailable: "open" });
    const l = await open.acquire("p");
    assert.ok(l.unguarded);
    assert.deepEqual(await c.hgetall(`guard:{${ns}}:use`), {}, "the script wrote nothing");
    await c.hset(`guard:{${ns}}:cfg`, "pv", "1");
    const held = await closed.acquire("p");
    assert.ok(held.held);
    await held.release();
  } finally {
    c.disconnect();
  }
});

test("fail-open runs are counted and reported with the next acquire (u:<fn>)", async () => {
  const ns = newNs();
  const store = RedisStore.fromUrl(fx.redis.url, { timeoutMs: 2000, connectTimeoutMs: 2000 });
  const g = new Guard(store, { namespace: ns });
  fx.guards.push(g);
  // stand-in for an outage: the next two acquires fail to reach the store
  const real = store.acquireWaiting.bind(store);
  let fail = 2;
  store.acquireWaiting = async (...args) => {
    if (fail-- > 0) throw new GuardUnavailable("store unreachable: test");
    return await real(...args);
  };
  const l1 = await g.acquire("fo");
  const l2 = await g.acquire("fo");
  assert.ok(l1.unguarded && l2.unguarded);
  assert.deepEqual(g.unavailablePending(), { fo: 2 });
  await (await g.acquire("fo")).release();
  assert.deepEqual(g.unavailablePending(), {});
  const fields = await store.usageFields(ns);
  assert.equal(fields["u:fo"], "2");
});

test("bad arguments raise UsageError naming the field, before any I/O", async () => {
  const g = guard(newNs());
  const cases = [
    [() => g.acquire("bad name"), "function"],
    [() => g.acquire("f", { ttlMs: 0 }), "ttlMs"],
    [() => g.acquire("f", { ttlMs: 86_400_001 }), "ttlMs"],
    [() => g.acquire("f", { waitMs: -1 }), "waitMs"],
    [() => g.acquire("f", { waitMs: Number.NaN }), "waitMs"],
    [() => g.acquire("f", { leaseId: "xyz" }), "leaseId"],
    [() => g.acquire("x".repeat(129)), "function"],
  ];
  for (const [fn, field] of cases) {
    await assert.rejects(fn, (e) => e instanceof UsageError && e.field === field, field);
  }
  delete process.env.AWS_LAMBDA_FUNCTION_NAME;
  await assert.rejects(g.acquire(), (e) => e instanceof UsageError && e.field === "function");
  assert.throws(() => Guard.fromUrl(fx.redis.url, { namespace: "-bad" }), (e) => e instanceof UsageError && e.field === "namespace");
  assert.throws(() => Guard.fromUrl(fx.redis.url, { onUnavailable: "maybe" }), UsageError);
  assert.throws(() => Guard.fromUrl(fx.redis.url, { timeoutMs: 0 }), UsageError);
  assert.throws(() => Guard.fromUrl("mysql://x"), (e) => e instanceof UsageError && e.field === "url");
});

test("the name comes from AWS_LAMBDA_FUNCTION_NAME, then the context; TTL from the context's deadline", async () => {
  const ns = newNs();
  const g = guard(ns, { leaseMarginMs: 1000 });
  const ctx = { functionName: "from-ctx", getRemainingTimeInMillis: () => 3000 };
  delete process.env.AWS_LAMBDA_FUNCTION_NAME;
  const a = await g.acquire(undefined, { context: ctx });
  assert.equal(a.function, "from-ctx");
  assert.equal(a.ttlMs, 4000);
  process.env.AWS_LAMBDA_FUNCTION_NAME = "from-env";
  try {
    const b = await g.acquire(undefined, { context: ctx });
    assert.equal(b.function, "from-env");
  } finally {
    delete process.env.AWS_LAMBDA_FUNCTION_NAME;
  }
});

test("limit(): a Lambda handler holds a slot while it runs and releases it in finally", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["h"], { max_concurrency: 1 });
  const g = guard(ns);
  let during;
  const handler = g.limit(async (event) => {
    during = (await usage(ns)).functions.h.in_use;
    if (event.fail) throw new Error("boom");
    return "ok";
  });
  const ctx = { functionName: "h", getRemainingTimeInMillis: () => 5000 };
  assert.equal(await handler({}, ctx), "ok");
  assert.equal(during, 1);
  await assert.rejects(handler({ fail: true }, ctx), /boom/);
  assert.equal((await usage(ns)).functions.h.in_use, 0, "released after a throw too");
  const blocker = await g.acquire("h");
  await assert.rejects(handler({}, ctx), Throttled);
  await blocker.release();
});

test("fromEnv reads the same variables as Python; GUARD_DISABLED grants without I/O", async () => {
  const saved = { ...process.env };
  try {
    for (const k of Object.keys(process.env)) if (k.startsWith("GUARD_")) delete process.env[k];
    assert.throws(() => Guard.fromEnv(), (e) => e instanceof UsageError && e.field === "url");
    Object.assign(process.env, { GUARD_REDIS_URL: fx.redis.url, GUARD_NAMESPACE: "envns", GUARD_ON_UNAVAILABLE: "closed", GUARD_TIMEOUT: "0.25" });
    const g = Guard.fromEnv();
    fx.guards.push(g);
    assert.equal(g.namespace, "envns");
    assert.equal(g.onUnavailable, "closed");
    process.env.GUARD_TIMEOUT = "soon";
    assert.throws(() => Guard.fromEnv(), (e) => e instanceof UsageError && e.field === "timeout");
    process.env.GUARD_TIMEOUT = "301";
    assert.throws(() => Guard.fromEnv(), (e) => e instanceof UsageError && e.field === "timeout");
    for (const k of Object.keys(process.env)) if (k.startsWith("GUARD_")) delete process.env[k];
    process.env.GUARD_DISABLED = "1";
    const d = Guard.fromEnv();
    fx.guards.push(d);
    const l = await d.acquire("anything");
    assert.ok(l.unguarded);
    assert.equal(await l.release(), false);
    assert.equal(d.backend.constructor.name, "DisabledBackend", "disabled: no connection at all");
    delete process.env.GUARD_DISABLED;
    process.env.GUARD_URL = "http://127.0.0.1:1";
    process.env.GUARD_TOKEN = "t";
    const h = Guard.fromEnv();
    assert.equal(h.backend.constructor.name, "HttpBackend");
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

test("NOSCRIPT: after SCRIPT FLUSH the next acquire reloads the script (one EVAL) and is granted", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["ns-f"], { max_concurrency: 1 });
  const g = guard(ns);
  await (await g.acquire("ns-f")).release();
  const c = fx.redis.client();
  await c.call("SCRIPT", "FLUSH");
  await c.call("CONFIG", "RESETSTAT");
  const l = await g.acquire("ns-f");
  assert.ok(l.held);
  await assert.rejects(g.acquire("ns-f"), Throttled, "the reloaded script enforces the limit");
  const stats = await c.call("INFO", "commandstats");
  c.disconnect();
  assert.match(stats, /cmdstat_evalsha:calls=2,.*failed_calls=1/, stats);
  assert.match(stats, /cmdstat_eval:calls=1,/, stats);
  await l.release();
});

test("generated lease ids are 128-bit, distinct across pool refills", async () => {
  const g = new Guard({ acquireWaiting() {}, renew() {}, release() {}, close() {} }, { disabled: true });
  const ids = new Set();
  for (let i = 0; i < 1000; i++) ids.add((await g.acquire("f")).leaseId);
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
});

test("fail-open counts of more than 32 functions are reported 32 names per acquire", async () => {
  const ns = newNs();
  const store = RedisStore.fromUrl(fx.redis.url, { timeoutMs: 2000, connectTimeoutMs: 2000 });
  const g = new Guard(store, { namespace: ns });
  fx.guards.push(g);
  const real = store.acquireWaiting.bind(store);
  let down = true;
  const sent = [];
  store.acquireWaiting = async (ns_, fn, id, ttl, wait, pending) => {
    if (down) throw new GuardUnavailable("store unreachable: test");
    sent.push(pending ? pending.size : 0);
    return await real(ns_, fn, id, ttl, wait, pending);
  };
  for (let i = 0; i < 40; i++) assert.ok((await g.acquire(`fn${i}`)).unguarded);
  down = false;
  await (await g.acquire("ok")).release();
  await (await g.acquire("ok")).release();
  assert.deepEqual(sent, [32, 8]);
  assert.deepEqual(g.unavailablePending(), {});
  // names the namespace does not know are added up under "~other" (acquire_lease.lua)
  const fields = await store.usageFields(ns);
  assert.equal(fields["u:~other"], "40");
});

test("keys: acquire({key}) and limit({key: (event) => ...}) meet the per-key cap and key rate", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["f"], { key_max_concurrency: 1, key_overrides: { vip: 2 } });
  await fx.admin.call(ns, "put_function", ["r"], { key_rate_per_second: 2, key_rate_burst: 1 });
  const g = guard(ns);
  const a = await g.acquire("f", { key: "tenant-a" });
  await assert.rejects(g.acquire("f", { key: "tenant-a" }), (e) => e instanceof Throttled && e.scope === "key");
  const v = [await g.acquire("f", { key: "vip" }), await g.acquire("f", { key: "vip" })];
  assert.ok((await g.acquire("f")).held, "no key: no key level");
  await assert.rejects(g.acquire("f", { key: "bad key" }), (e) => e instanceof UsageError && e.field === "key");
  await a.release();
  for (const l of v) await l.release();
  const handler = g.limit(async (event) => event.n, { function: "r", key: (event) => event.tenant });
  assert.equal(await handler({ tenant: "t1", n: 1 }), 1);
  assert.equal(await handler({ tenant: "t2", n: 2 }), 2);
  await assert.rejects(handler({ tenant: "t1", n: 3 }), (e) => {
    assert.ok(e instanceof Throttled && e.scope === "rate:key", e.scope);
    assert.ok(e.retryAfterMs >= 1 && e.retryAfterMs <= 500, String(e.retryAfterMs));
    return true;
  });
  assert.equal(await handler({ n: 4 }), 4, "no key from the event: no key rate");
});
