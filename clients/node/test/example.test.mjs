// examples/node_http: the SDK handler (sdk_handler.mjs) and its Express twin (server.mjs) as a
// user runs them, resolving "guard-concurrency" as an installed package (linked here the way
// `npm install` links its file: dependency). handler.mjs, the HTTP-only variant, is tested by
// tests/aws/test_node_example.py.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { HERE, newNs, PyAdmin, REPO, RedisProc } from "./helpers.mjs";

const EXAMPLE = join(REPO, "examples", "node_http");
let redis, admin;

before(async () => {
  const nm = join(EXAMPLE, "node_modules");
  mkdirSync(nm, { recursive: true });
  for (const [name, target] of [
    ["guard-concurrency", join(HERE, "..")],
    ["express", join(HERE, "..", "node_modules", "express")],
  ]) {
    if (!existsSync(join(nm, name))) symlinkSync(target, join(nm, name), "dir");
  }
  redis = await RedisProc.start();
  admin = new PyAdmin(redis.url);
});

after(async () => {
  await admin.close();
  await redis.cleanup();
});

const DRIVER = `
import { once } from "node:events";
const { g, handler } = await import("./sdk_handler.mjs");
const { app } = await import("./server.mjs");
const ctx = { functionName: "orders-fn", getRemainingTimeInMillis: () => 5000 };
const out = { lambda: await handler({ rawPath: "/orders/7" }, ctx) };
const held = await g.acquire("orders-fn", { ttlMs: 30000 });
out.lambdaRefused = await handler({ rawPath: "/orders/7" }, ctx);
const server = app.listen(0, "127.0.0.1");
await once(server, "listening");
const res = await fetch("http://127.0.0.1:" + server.address().port + "/orders/7");
out.expressRefused = { status: res.status, body: await res.json() };
await held.release();
const ok = await fetch("http://127.0.0.1:" + server.address().port + "/orders/8");
out.express = { status: ok.status, body: await ok.json() };
server.close();
await g.close();
console.log(JSON.stringify(out));
`;

test("the SDK example: the Lambda handler and its Express twin share one limit", async () => {
  const ns = newNs("ex");
  await admin.call(ns, "put_function", ["orders-fn"], { max_concurrency: 1 });
  const env = { ...process.env, GUARD_REDIS_URL: redis.url, GUARD_NAMESPACE: ns, GUARD_TIMEOUT: "2" };
  delete env.AWS_LAMBDA_FUNCTION_NAME;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", DRIVER], { cwd: EXAMPLE, env, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").pop());
  assert.equal(out.lambda.statusCode, 200);
  assert.equal(JSON.parse(out.lambda.body).fn, "orders-fn");
  assert.equal(out.lambdaRefused.statusCode, 429);
  assert.equal(out.expressRefused.status, 429);
  assert.equal(out.expressRefused.body.scope, "function");
  assert.equal(out.express.status, 200);
  assert.equal(out.express.body.path, "/orders/8");
  assert.equal((await admin.call(ns, "usage")).functions["orders-fn"].in_use, 0);
});
