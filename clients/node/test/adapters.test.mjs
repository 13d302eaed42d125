// The AWS adapters and the Express integration with realistic events (the API Gateway samples
// of tests/aws/events.py, a function-URL event, SQS records), against a real redis-server;
// the SQS visibility backoff against a local stand-in of the SQS JSON API.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import express from "express";
import {
  Guard,
  GuardUnavailable,
  PROBLEM_THROTTLED,
  PROBLEM_UNAVAILABLE,
  Throttled,
  apiGateway,
  lambdaToExpress,
  middleware,
  sqs,
} from "../dist/esm/index.mjs";
import { REPO, freePort, newNs, PyAdmin, python, RedisProc } from "./helpers.mjs";

let redis, admin, EVENTS;
const closers = [];

before(async () => {
  redis = await RedisProc.start();
  admin = new PyAdmin(redis.url);
  const code = `import json, sys; sys.path.insert(0, ${JSON.stringify(join(REPO, "tests", "aws"))}); from events import event; print(json.dumps({"v1": event("v1"), "v2": event("v2")}))`;
  EVENTS = JSON.parse(python(code));
  // a function URL event is a payload 2.0 event whose requestContext names a lambda-url domain
  EVENTS.url = structuredClone(EVENTS.v2);
  EVENTS.url.requestContext.domainName = "abcdefg.lambda-url.us-east-1.on.aws";
  EVENTS.url.requestContext.apiId = "abcdefg";
  EVENTS.url.routeKey = EVENTS.url.requestContext.routeKey = "$default";
  delete process.env.AWS_LAMBDA_FUNCTION_NAME;
});

after(async () => {
  for (const c of closers.reverse()) await c();
  await admin.close();
  await redis.cleanup();
});

function context(functionName, ms = 10_000) {
  const end = Date.now() + ms;
  return {
    functionName,
    awsRequestId: "8f5e4ce2-0000-4000-8000-000000000001",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    getRemainingTimeInMillis: () => Math.max(0, end - Date.now()),
  };
}

function guard(ns, options = {}) {
  const g = Guard.fromUrl(redis.url, { namespace: ns, timeoutMs: 2000, ...options });
  closers.push(() => g.close());
  return g;
}

for (const kind of ["v1", "v2", "url"]) {
  test(`apiGateway (${kind}): the handler runs holding a lease; a refusal is a 429 problem with Retry-After`, async () => {
    const ns = newNs("a");
    await admin.call(ns, "put_function", ["orders-fn"], { max_concurrency: 1 });
    const g = guard(ns);
    let inUse = null;
    const handler = apiGateway(g, async (event, ctx) => {
      inUse = (await admin.call(ns, "usage")).functions["orders-fn"].in_use;
      return { statusCode: 200, body: JSON.stringify({ path: event.rawPath ?? event.path, fn: ctx.functionName }) };
    });
    const ok = await handler(structuredClone(EVENTS[kind]), context("orders-fn"));
    assert.equal(ok.statusCode, 200);
    assert.equal(inUse, 1);
    assert.equal((await admin.call(ns, "usage")).functions["orders-fn"].in_use, 0);

    const held = await g.acquire("orders-fn", { ttlMs: 30_000 });
    let ran = false;
    const refused = await apiGateway(g, () => {
      ran = true;
    })(structuredClone(EVENTS[kind]), context("orders-fn"));
    assert.equal(ran, false);
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.headers["Content-Type"], "application/problem+json");
    assert.ok(Number(refused.headers["Retry-After"]) >= 1);
    const problem = JSON.parse(refused.body);
    assert.equal(problem.type, PROBLEM_THROTTLED);
    assert.equal(problem.title, "Throttled");
    assert.equal(problem.status, 429);
    assert.equal(problem.scope, "function");
    assert.equal(problem.function, "orders-fn");
    assert.ok(problem.retry_after > 0);
    await held.release();
  });
}

test("apiGateway: the refusal documents are the Python adapters' (type URIs, titles, fields); one problem table", async () => {
  const py = JSON.parse(
    python(
      "import json; from guard.aws import adapters as a; from guard.errors import Throttled, GuardUnavailable\n" +
        "t = a.refusal_response(Throttled('fn', 'group:api', 1.2)); u = a.refusal_response(GuardUnavailable('x', function='fn'))\n" +
        "print(json.dumps({'t': t, 'u': u}))",
    ),
  );
  const { refusalResponse } = await import("../dist/esm/index.mjs");
  const t = refusalResponse(new Throttled("fn", "group:api", 1.2));
  const u = refusalResponse(new GuardUnavailable("x", "fn"));
  for (const [ours, theirs] of [
    [t, py.t],
    [u, py.u],
  ]) {
    assert.equal(ours.statusCode, theirs.statusCode);
    assert.deepEqual(ours.headers, theirs.headers);
    assert.deepEqual(JSON.parse(ours.body), JSON.parse(theirs.body));
  }
  assert.equal(JSON.parse(u.body).type, PROBLEM_UNAVAILABLE);
  const table = JSON.parse(python("import json; from guard import problems as p; print(json.dumps({k: [t.uri, t.status, t.title] for k, t in p.TYPES.items()}))"));
  const { PROBLEM_TYPES, problemUri } = await import("../dist/esm/index.mjs");
  assert.deepEqual(Object.fromEntries(Object.entries(PROBLEM_TYPES).map(([k, t]) => [k, [problemUri(k), t.status, t.title]])), table);
});

test("apiGateway: a function that fails closed answers 503 when the store is unreachable; a wait is cut to the deadline", async () => {
  const dead = `redis://127.0.0.1:${await freePort()}/0`;
  const g = Guard.fromUrl(dead, { namespace: "x", timeoutMs: 100, onUnavailable: "closed" });
  closers.push(() => g.close());
  const r = await apiGateway(g, () => ({ statusCode: 200 }))(structuredClone(EVENTS.v2), context("orders-fn"));
  assert.equal(r.statusCode, 503);
  assert.equal(JSON.parse(r.body).function, "orders-fn");

  const ns = newNs("a");
  await admin.call(ns, "put_function", ["slow"], { max_concurrency: 0 });
  const g2 = guard(ns);
  const t0 = Date.now();
  const w = await apiGateway(g2, () => ({ statusCode: 200 }), { waitMs: 10_000 })(structuredClone(EVENTS.v2), context("slow", 800));
  const took = Date.now() - t0;
  assert.equal(w.statusCode, 429);
  assert.ok(took >= 250 && took < 3000, `the 10 s wait was cut to the invocation's deadline less 500 ms: ${took} ms`);
});

// -- SQS ----------------------------------------------------------------------------------------

const QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders";

function sqsEvent(n) {
  return {
    Records: Array.from({ length: n }, (_, i) => ({
      messageId: `m-${i}`,
      receiptHandle: `rh-${i}`,
      body: JSON.stringify({ order: i }),
      attributes: { ApproximateReceiveCount: "1", SentTimestamp: "1775738096000" },
      messageAttributes: {},
      md5OfBody: "x",
      eventSource: "aws:sqs",
      eventSourceARN: QUEUE_ARN,
      awsRegion: "us-east-1",
    })),
  };
}

/** A stand-in of the SQS JSON API: records ChangeMessageVisibilityBatch calls; `delayMs`
 * holds each answer (a hanging endpoint). */
async function standIn(delayMs = 0) {
  const calls = [];
  const server = http.createServer(async (req, res) => {
    let raw = "";
    for await (const c of req) raw += c;
    calls.push({ target: req.headers["x-amz-target"], body: JSON.parse(raw || "{}"), url: req.url });
    setTimeout(() => {
      const body = JSON.parse(raw || "{}");
      const out = { Successful: (body.Entries ?? []).map((e) => ({ Id: e.Id })), Failed: [] };
      res.writeHead(200, { "Content-Type": "application/x-amz-json-1.0" });
      res.end(JSON.stringify(out));
    }, delayMs);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(async () => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${server.address().port}`, calls };
}

function withAwsEnv(endpoint) {
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SQS: endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    AWS_REGION: "us-east-1",
  });
}

test("sqs: the batch runs under one lease; a refusal reports every record as a batch item failure", async () => {
  const ns = newNs("q");
  await admin.call(ns, "put_function", ["consumer"], { max_concurrency: 1 });
  const g = guard(ns);
  let seen = 0;
  const handler = sqs(g, async (event) => {
    seen += event.Records.length;
    return { batchItemFailures: [] };
  }, { onThrottle: "report" });
  assert.deepEqual(await handler(sqsEvent(3), context("consumer")), { batchItemFailures: [] });
  assert.equal(seen, 3);
  const held = await g.acquire("consumer", { ttlMs: 30_000 });
  const out = await handler(sqsEvent(3), context("consumer"));
  assert.deepEqual(out.batchItemFailures.map((f) => f.itemIdentifier), ["m-0", "m-1", "m-2"]);
  assert.equal(seen, 3, "the handler did not run");
  await assert.rejects(sqs(g, () => null)(sqsEvent(1), context("consumer")), Throttled); // "raise" (default)
  await held.release();
});

test("sqs: visibility backoff hides refused messages through ChangeMessageVisibilityBatch (batches of 10, jittered)", async () => {
  const ns = newNs("q");
  await admin.call(ns, "put_function", ["consumer"], { max_concurrency: 0 });
  const g = guard(ns);
  const sqsApi = await standIn();
  withAwsEnv(sqsApi.url);
  let n = 0;
  const handler = sqs(g, () => null, { onThrottle: "report", visibilityBackoff: [30, 90], random: () => [0, 0.999, 0.5][n++ % 3] });
  const out = await handler(sqsEvent(12), context("consumer"));
  assert.equal(out.batchItemFailures.length, 12);
  assert.equal(sqsApi.calls.length, 2, "12 records: two calls of at most 10 entries");
  assert.ok(sqsApi.calls.every((c) => c.target === "AmazonSQS.ChangeMessageVisibilityBatch"));
  const entries = sqsApi.calls.flatMap((c) => c.body.Entries);
  assert.equal(sqsApi.calls[0].body.QueueUrl, `${sqsApi.url}/123456789012/orders`);
  assert.deepEqual(entries.map((e) => e.ReceiptHandle), sqsEvent(12).Records.map((r) => r.receiptHandle));
  assert.deepEqual(entries.slice(0, 3).map((e) => e.VisibilityTimeout), [30, 90, 60]);
  assert.ok(entries.every((e) => e.VisibilityTimeout >= 30 && e.VisibilityTimeout <= 90));
  assert.throws(() => sqs(g, () => null, { visibilityBackoff: [5, 43_201] }), /visibilityBackoff/);
  assert.throws(() => sqs(g, () => null, { onThrottle: "drop" }), /onThrottle/);
});

test("sqs: a hanging SQS endpoint cannot hold the invocation past its deadline", async () => {
  const ns = newNs("q");
  await admin.call(ns, "put_function", ["consumer"], { max_concurrency: 0 });
  const g = guard(ns);
  const sqsApi = await standIn(5_000);
  withAwsEnv(sqsApi.url);
  const warnings = [];
  const logger = { info() {}, warn: (m) => warnings.push(m) };
  const handler = sqs(g, () => null, { onThrottle: "report", visibilityBackoff: [30, 90], logger });
  const t0 = Date.now();
  const out = await handler(sqsEvent(25), context("consumer", 3000)); // 3 s left, 0.5 s margin
  const took = Date.now() - t0;
  assert.equal(out.batchItemFailures.length, 25, "the refusal is still reported");
  assert.ok(took < 3000, `took ${took} ms: every call ends before the invocation's deadline`);
  assert.ok(warnings.some((w) => /not delayed|failed/.test(w)), warnings.join("\n"));
});

// -- Express: the same handler on Lambda and on ECS, the same limits ---------------------------

test("Express: lambdaToExpress serves the apiGateway-wrapped handler with the same limits as on Lambda", async () => {
  const ns = newNs("e");
  await admin.call(ns, "put_function", ["orders-fn"], { max_concurrency: 1 });
  const g = guard(ns);
  const handler = apiGateway(g, async (event) => ({
    statusCode: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path: event.rawPath, q: event.queryStringParameters ?? null, body: event.body ?? null }),
  }));
  const app = express();
  app.all("/orders/:id", lambdaToExpress(handler, { functionName: "orders-fn", timeoutMs: 5000 }));
  const server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(async () => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;

  const ok = await fetch(`${base}/orders/7?verbose=1`, { method: "POST", body: '{"x":1}', headers: { "Content-Type": "application/json" } });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { path: "/orders/7", q: { verbose: "1" }, body: '{"x":1}' });

  const lease = await g.acquire("orders-fn", { ttlMs: 30_000 }); // a Lambda invocation holds the one slot
  const refused = await fetch(`${base}/orders/7`);
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("content-type"), "application/problem+json");
  assert.ok(Number(refused.headers.get("retry-after")) >= 1);
  assert.equal((await refused.json()).scope, "function");
  // and the other way round: the container's request holds the slot a Lambda invocation wants
  await lease.release();
  let release;
  const slow = apiGateway(g, () => new Promise((r) => (release = () => r({ statusCode: 204 }))));
  const app2 = express();
  app2.get("/slow", lambdaToExpress(slow, { functionName: "orders-fn" }));
  const s2 = app2.listen(0, "127.0.0.1");
  await once(s2, "listening");
  closers.push(async () => s2.close());
  const pending = fetch(`http://127.0.0.1:${s2.address().port}/slow`);
  while (!release) await new Promise((r) => setTimeout(r, 10));
  const onLambda = await handler(structuredClone(EVENTS.v2), context("orders-fn"));
  assert.equal(onLambda.statusCode, 429);
  release();
  assert.equal((await pending).status, 204);
});

test("Express: middleware() takes a lease per request, releases it when the response ends, refuses with 429", async () => {
  const ns = newNs("e");
  await admin.call(ns, "put_function", ["web"], { max_concurrency: 1 });
  const g = guard(ns);
  const app = express();
  let finish;
  app.get("/hold", middleware(g, { function: "web" }), (req, res) => {
    finish = () => res.send("held");
  });
  app.get("/quick", middleware(g, { function: "web" }), (req, res) => res.send("ok"));
  const server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(async () => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  assert.equal(await (await fetch(`${base}/quick`)).text(), "ok");
  const holding = fetch(`${base}/hold`);
  while (!finish) await new Promise((r) => setTimeout(r, 10));
  const refused = await fetch(`${base}/quick`);
  assert.equal(refused.status, 429);
  assert.equal((await refused.json()).type, PROBLEM_THROTTLED);
  finish();
  assert.equal(await (await holding).text(), "held");
  await new Promise((r) => setTimeout(r, 50)); // the release runs on 'finish'
  assert.equal((await admin.call(ns, "usage")).functions.web.in_use, 0);
  assert.equal(await (await fetch(`${base}/quick`)).text(), "ok");
});
