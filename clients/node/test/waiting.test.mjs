// Waiting (issue 18) in the Node SDK: the Guard's one subscription wakes only the waiters a
// release names (as guard/store.py's ReleaseListener), of any function, and the group's
// queue orders waiters of its member functions — against a real redis-server.
import assert from "node:assert/strict";
import { test } from "node:test";
import { newNs, serverFixture, sleep } from "./helpers.mjs";

const fx = serverFixture();
const guard = fx.guard;

async function refusals(ns, fn, scope) {
  const c = fx.redis.client();
  const v = await c.hget(`guard:{${ns}}:use`, `t:${fn}|${scope}`);
  c.disconnect();
  return Number(v ?? 0);
}

test("a release wakes only the waiter it names, not every waiter of the Guard", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["f"], { max_concurrency: 1 });
  const g = guard(ns);
  const held = await guard(ns).acquire("f", { ttlMs: 60_000 });
  const granted = [];
  const waits = [0, 1, 2, 3].map((i) =>
    g.acquire("f", { waitMs: 10_000 }).then((l) => {
      granted.push(i);
      return l;
    }),
  );
  await sleep(150); // every waiter was refused and sleeps (retry bound: 1 s)
  const before = await refusals(ns, "f", "function");
  await held.release();
  const first = await Promise.race(waits);
  await sleep(150);
  // base (every message woke every waiter): the three others retried and were refused
  assert.equal(await refusals(ns, "f", "function"), before);
  assert.equal(granted.length, 1);
  await first.release();
  for (const w of waits) await (await w).release();
  assert.equal(granted.length, 4);
});

test("a freed group slot goes to the oldest waiter of any member function", async () => {
  const ns = newNs();
  await fx.admin.call(ns, "put_function", ["a"], {});
  await fx.admin.call(ns, "put_function", ["b"], {});
  await fx.admin.call(ns, "put_group", ["g"], { max_concurrency: 1, members: ["a", "b"] });
  const g = guard(ns);
  const held = await guard(ns).acquire("a", { ttlMs: 60_000 });
  const order = [];
  const wb = g.acquire("b", { waitMs: 10_000 }).then((l) => (order.push("b"), l));
  await sleep(100);
  const wa = g.acquire("a", { waitMs: 10_000 }).then((l) => (order.push("a"), l));
  await sleep(100);
  await held.release(); // names b's ticket (the group's oldest), which wakes at once
  const lb = await wb;
  await sleep(100);
  assert.deepEqual(order, ["b"]);
  await lb.release();
  await (await wa).release();
  assert.deepEqual(order, ["b", "a"]);
});
