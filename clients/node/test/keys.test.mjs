// Keyed limits and rate limits (issue 14) through the Node SDK: the `key` of acquire / slot /
// limit and of every adapter, its validation, the refusal scopes, and waiting on a rate refusal
// (a sleep of retry_after, not a wait for a release that will never come). Against a real
// redis-server configured by the Python SDK's admin, plus a recording backend and a stand-in
// HTTP service for what the SDK sends.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import { after, before, test } from "node:test";
import express from "express";
import {
  Guard,
  HttpBackend,
  RedisStore,
  Throttled,
  UsageError,
  apiGateway,
  checkKey,
  isRateScope,
  middleware,
  sqs,
} from "../dist/esm/index.mjs";
import { newNs, PyAdmin, RedisProc, sleep } from "./helpers.mjs";

let redis, admin;
const closers = [];

before(async () => {
  redis = await RedisProc.start();
  admin = new PyAdmin(redis.url);
  delete process.env.AWS_LAMBDA_FUNCTION_NAME;
});

after(async () => {
  for (const c of closers.reverse()) await c();
  await admin.close();
  await redis.cleanup();
});

function guard(ns, options = {}) {
  const g = Guard.fromUrl(redis.url, { namespace: ns, timeoutMs: 2000, ...options });
  closers.push(() => g.close());
  return g;
}

/** A backend that grants everything and records each acquire's key. */
class Recorder {
  constructor() {
    this.keys = [];
  }
  async acquireWaiting(ns, fn, leaseId, ttlMs, waitMs, pending, key) {
    this.keys.push(key);
    return { granted: true, fence: 1, expiresMs: Date.now() + 1000, ttlMs: 1000, groups: [], onUnavailable: "", shadowScope: "" };
  }
  async renew() {
    return null;
  }
  async release() {
    return true;
  }
  async close() {}
}

async function throttled(p) {
  try {
    await p;
  } catch (e) {
    if (e instanceof Throttled) return e;
    throw e;
  }
  assert.fail("expected Throttled");
}

async function numsub(ns) {
  const c = redis.client();
  try {
    return Number((await c.call("PUBSUB", "NUMSUB", `guard:{${ns}}:released`))[1]);
  } finally {
    c.disconnect();
  }
}

test("a key follows the name rule (1-128 characters): UsageError naming `key`, before any I/O", async () => {
  const rec = new Recorder();
  const g = new Guard(rec, { namespace: "n" });
  for (const bad of ["", "a b", "x".repeat(129), "-lead", "tenant/1", 7]) {
    await assert.rejects(g.acquire("f", { key: bad }), (e) => e instanceof UsageError && e.field === "key", JSON.stringify(bad));
    assert.throws(() => checkKey(bad), UsageError);
  }
  assert.deepEqual(rec.keys, [], "nothing was sent");
  const ok = "k".repeat(128);
  assert.equal(checkKey(ok), ok);
  await (await g.acquire("f", { key: ok })).release();
  await (await g.acquire("f", { key: "tenant_a.eu-1" })).release();
  await (await g.acquire("f")).release();
  await (await g.acquire("f", { key: null })).release(); // null, as undefined: no key
  assert.deepEqual(rec.keys, [ok, "tenant_a.eu-1", undefined, undefined]);
  assert.throws(() => g.limit(() => 1, { key: "bad key" }), (e) => e instanceof UsageError && e.field === "key");
});

test("slot and limit pass the key; limit's key may be a function of (event, context), undefined for none", async () => {
  const rec = new Recorder();
  const g = new Guard(rec, { namespace: "n" });
  assert.equal(await g.slot("f", () => 42, { key: "t1" }), 42);
  const seen = [];
  const h = g.limit(
    (event, ctx) => `${event.tenant}:${ctx.functionName}`,
    {
      key: (event, ctx) => {
        seen.push(ctx.functionName);
        return event.tenant ?? undefined;
      },
    },
  );
  assert.equal(await h({ tenant: "acme" }, { functionName: "fn" }), "acme:fn");
  assert.equal(await h({}, { functionName: "fn" }), "undefined:fn");
  const fixed = g.limit(() => "ok", { function: "f", key: "all" });
  await fixed({}, undefined);
  assert.deepEqual(rec.keys, ["t1", "acme", undefined, "all"]);
  assert.deepEqual(seen, ["fn", "fn"]);
  await assert.rejects(h({ tenant: "no spaces" }, { functionName: "fn" }), (e) => e instanceof UsageError && e.field === "key");
});

test("apiGateway, sqs and the Express middleware take a key (a string or a function of the request)", async () => {
  const rec = new Recorder();
  const g = new Guard(rec, { namespace: "n" });
  const ctx = { functionName: "fn", getRemainingTimeInMillis: () => 10_000 };
  await apiGateway(g, () => ({ statusCode: 200 }), { key: (e) => e.headers["x-api-key"] })({ headers: { "x-api-key": "key-1" } }, ctx);
  await apiGateway(g, () => ({ statusCode: 200 }), { key: "shared" })({ headers: {} }, ctx);
  const byTenant = (event) => event.Records[0]?.messageAttributes?.tenant?.stringValue;
  const rec1 = { messageId: "m1", messageAttributes: { tenant: { stringValue: "t-9", dataType: "String" } } };
  await sqs(g, () => "done", { key: byTenant })({ Records: [rec1] }, ctx);
  assert.deepEqual(rec.keys, ["key-1", "shared", "t-9"]);

  const app = express();
  app.get("/x", middleware(g, { function: "web", key: (req) => req.headers["x-tenant"] }), (req, res) => res.send("ok"));
  const server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(async () => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  assert.equal(await (await fetch(`${base}/x`, { headers: { "x-tenant": "acme" } })).text(), "ok");
  assert.equal(await (await fetch(`${base}/x`)).text(), "ok");
  // a key the client sent that breaks the rule is the client's mistake: 400 naming `key`
  const bad = await fetch(`${base}/x`, { headers: { "x-tenant": "a".repeat(129) } });
  assert.equal(bad.status, 400);
  const doc = await bad.json();
  assert.equal(doc.field, "key");
  assert.equal(bad.headers.get("content-type"), "application/problem+json");
  assert.deepEqual(rec.keys.slice(3), ["acme", undefined]);
});

test("scopes: `key` and `group-key:<g>` refusals at the per-key caps; the total stays the function's max", async () => {
  const ns = newNs("k");
  await admin.call(ns, "put_group", ["tenants"], { key_max_concurrency: 2, members: ["ingest", "export"] });
  await admin.call(ns, "put_function", ["ingest"], { max_concurrency: 3, key_max_concurrency: 1, key_overrides: { big: 2 } });
  const g = guard(ns);
  const a = await g.acquire("ingest", { key: "acme" });
  let e = await throttled(g.acquire("ingest", { key: "acme" }));
  assert.equal(e.scope, "key");
  assert.equal(e.function, "ingest");
  const b1 = await g.acquire("ingest", { key: "big" }); // key_overrides: big may hold 2
  const b2 = await g.acquire("ingest", { key: "big" });
  e = await throttled(g.acquire("ingest", { key: "other" })); // 3 held: the function's total
  assert.equal(e.scope, "function");
  await a.release();
  e = await throttled(g.acquire("ingest", { key: "big" }));
  assert.equal(e.scope, "key");
  const o = await g.acquire("ingest", { key: "other" });
  for (const l of [b1, b2, o]) await l.release();
  // the group's per-key cap counts the key across its members
  const x1 = await g.acquire("ingest", { key: "acme" });
  const x2 = await g.acquire("export", { key: "acme" });
  e = await throttled(g.acquire("export", { key: "acme" }));
  assert.equal(e.scope, "group-key:tenants");
  assert.equal(isRateScope(e.scope), false);
  await x1.release();
  await x2.release();
  const u = await admin.call(ns, "usage");
  assert.equal(u.functions.ingest.in_use, 0);
});

test("rate refusals: scope rate:function / rate:key with the exact retry_after; a wait sleeps it and is granted", async () => {
  const ns = newNs("r");
  await admin.call(ns, "put_function", ["api"], { rate_per_second: 4, rate_burst: 1 });
  await admin.call(ns, "put_function", ["per-caller"], { key_rate_per_second: 2, key_rate_burst: 1 });
  const g = guard(ns);
  await (await g.acquire("api")).release();
  const e = await throttled(g.acquire("api"));
  assert.equal(e.scope, "rate:function");
  assert.ok(isRateScope(e.scope) && e.rate);
  assert.ok(e.retryAfter > 0 && e.retryAfter <= 0.25, String(e.retryAfter));
  const t0 = Date.now();
  const l = await g.acquire("api", { waitMs: 2000 });
  const waited = Date.now() - t0;
  assert.ok(l.held);
  assert.ok(waited >= e.retryAfterMs - 60 && waited < 1000, `waited ${waited} ms for ${e.retryAfterMs}`);
  await l.release();
  assert.equal(await numsub(ns), 0, "a rate refusal waits by sleeping, not on the release channel");

  await (await g.acquire("per-caller", { key: "u1" })).release();
  const k = await throttled(g.acquire("per-caller", { key: "u1" }));
  assert.equal(k.scope, "rate:key");
  await (await g.acquire("per-caller", { key: "u2" })).release(); // another key has its own bucket
  await (await g.acquire("per-caller")).release(); // no key: no key rate
});

test("a rate refusal whose retry_after is beyond the wait is thrown at once (no sleep that cannot help)", async () => {
  const ns = newNs("r");
  await admin.call(ns, "put_function", ["slow"], { rate_per_second: 0.2, rate_burst: 1 });
  const g = guard(ns);
  await (await g.acquire("slow")).release();
  const t0 = Date.now();
  const e = await throttled(g.acquire("slow", { waitMs: 1000 }));
  assert.equal(e.scope, "rate:function");
  assert.ok(e.retryAfter > 4, String(e.retryAfter));
  assert.ok(Date.now() - t0 < 500, `took ${Date.now() - t0} ms`);
});

test("RedisStore.acquireWaiting: rate refusals sleep retry_after (no subscription, no release expected)", async () => {
  const ns = newNs("s");
  const store = RedisStore.fromUrl(redis.url, { timeoutMs: 2000, connectTimeoutMs: 2000 });
  closers.push(() => store.close());
  const calls = [];
  const answers = [
    { granted: false, scope: "rate:group:etl", retryAfterMs: 150, onUnavailable: "" },
    { granted: false, scope: "rate:account", retryAfterMs: 200, onUnavailable: "" },
    { granted: true, fence: 1, expiresMs: 0, ttlMs: 1, groups: [], onUnavailable: "", shadowScope: "" },
  ];
  store.acquire = async (...args) => {
    calls.push([Date.now(), args]);
    return answers[calls.length - 1];
  };
  const t0 = Date.now();
  const r = await store.acquireWaiting(ns, "f", Buffer.alloc(16, 1), 0, 5000, undefined, "tenant");
  assert.equal(r.granted, true);
  assert.equal(calls.length, 3, "one retry per retry_after, no polling in between");
  assert.ok(calls[1][0] - t0 >= 140 && calls[2][0] - calls[1][0] >= 190, JSON.stringify(calls.map((c) => c[0] - t0)));
  for (const [, args] of calls) assert.ok(JSON.stringify(args).includes('"tenant"'), JSON.stringify(args));
  assert.equal(await numsub(ns), 0);
});

test("HTTP mode: the lease body carries `key`; a rate refusal is retried after retry_after, not in a hot loop", async () => {
  const bodies = [];
  const server = http.createServer((req, res) => {
    let text = "";
    req.on("data", (d) => (text += d));
    req.on("end", () => {
      if (req.method === "DELETE") {
        res.statusCode = 204;
        res.end();
        return;
      }
      const body = JSON.parse(text);
      bodies.push([Date.now(), body]);
      res.setHeader("Content-Type", "application/json");
      if (bodies.length === 1) {
        res.statusCode = 429;
        res.end(JSON.stringify({ scope: "rate:key", retry_after: 0.3, function: body.function }));
      } else {
        res.statusCode = 201;
        res.end(JSON.stringify({ lease_id: body.lease_id, fence: 3, expires_at: Date.now() / 1000 + 5, ttl_seconds: 5, groups: [] }));
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(async () => server.close());
  const g = new Guard(new HttpBackend(`http://127.0.0.1:${server.address().port}`, "t", 2000), { namespace: "h" });
  const l = await g.acquire("api", { key: "key-7", waitMs: 2000 });
  assert.ok(l.held);
  assert.equal(bodies.length, 2);
  assert.equal(bodies[0][1].key, "key-7");
  assert.equal(bodies[1][1].key, "key-7");
  assert.ok(bodies[1][0] - bodies[0][0] >= 280, `retried after ${bodies[1][0] - bodies[0][0]} ms`);
  await assert.rejects(g.acquire("api", { key: "bad key" }), (e) => e instanceof UsageError && e.field === "key");
  assert.equal(bodies.length, 2);
  await (await g.acquire("api")).release();
  assert.equal("key" in bodies[2][1], false, "no key: no field");
});

test("per-tenant SQS consumer and per-API-key rate limit (the docs' examples), against the scripts", async () => {
  const ns = newNs("t");
  await admin.call(ns, "put_function", ["tenant-worker"], { max_concurrency: 10, key_max_concurrency: 1 });
  await admin.call(ns, "put_function", ["public-api"], { key_rate_per_second: 1, key_rate_burst: 1 });
  const g = guard(ns);
  const ctx = (fn) => ({ functionName: fn, getRemainingTimeInMillis: () => 10_000 });
  const batch = (tenant) => ({
    Records: [1, 2].map((i) => ({ messageId: `${tenant}-${i}`, messageAttributes: { tenant: { stringValue: tenant, dataType: "String" } } })),
  });
  let release;
  const running = new Promise((r) => (release = r));
  const consumer = sqs(g, async (event) => (event.Records[0].messageId.startsWith("acme") ? await running : "ok"), {
    key: (event) => event.Records[0]?.messageAttributes?.tenant?.stringValue,
    onThrottle: "report",
    logger: { info() {}, warn() {} },
  });
  const acme1 = consumer(batch("acme"), ctx("tenant-worker"));
  await sleep(50);
  assert.deepEqual(await consumer(batch("acme"), ctx("tenant-worker")), {
    batchItemFailures: [{ itemIdentifier: "acme-1" }, { itemIdentifier: "acme-2" }],
  });
  assert.equal(await consumer(batch("globex"), ctx("tenant-worker")), "ok", "another tenant is not held back");
  release("done");
  assert.equal(await acme1, "done");

  const api = apiGateway(g, () => ({ statusCode: 200, body: "ok" }), { key: (e) => e.headers["x-api-key"] });
  const ev = (k) => ({ headers: { "x-api-key": k } });
  assert.equal((await api(ev("k1"), ctx("public-api"))).statusCode, 200);
  const refused = await api(ev("k1"), ctx("public-api"));
  assert.equal(refused.statusCode, 429);
  const doc = JSON.parse(refused.body);
  assert.equal(doc.scope, "rate:key");
  assert.ok(doc.retry_after > 0 && doc.retry_after <= 1, String(doc.retry_after));
  assert.equal(refused.headers["Retry-After"], "1");
  assert.equal((await api(ev("k2"), ctx("public-api"))).statusCode, 200);
});
