// Python and Node clients on one namespace at once: holders are counted outside both SDKs
// (INCR/DECR of a plain counter per level, on separate connections, by the same rule as
// tests/contention_worker.py, whose Python hammer runs here beside the Node one). No level may
// ever exceed its limit, whichever runtime holds the slots, and every slot comes back.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Guard, Throttled } from "../dist/esm/index.mjs";
import { newNs, PYTHON, PyAdmin, REPO, RedisProc, sleep } from "./helpers.mjs";

const LEVELS = {
  ingest: ["f:ingest", "g:etl", "a"],
  transform: ["f:transform", "g:etl", "a"],
  login: ["f:login", "g:api", "a"],
  adhoc: ["f:adhoc", "a"],
};
const FUNCTIONS = Object.keys(LEVELS);
const LIMITS = { a: 8, "g:etl": 5, "f:ingest": 3, "f:login": 4 };
const SECONDS = 4;

let redis, admin;
before(async () => {
  redis = await RedisProc.start();
  admin = new PyAdmin(redis.url);
});
after(async () => {
  await admin.close();
  await redis.cleanup();
});

function pythonHammer(ns) {
  const code = [
    "import json, sys",
    `sys.path.insert(0, ${JSON.stringify(join(REPO, "tests"))})`,
    "from contention_worker import hammer",
    `print(json.dumps(hammer(${JSON.stringify(redis.url)}, ${JSON.stringify(ns)}, 4, 100000, ${SECONDS})))`,
  ].join("\n");
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, ["-c", code], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`python hammer exited ${code}`))));
  });
}

async function nodeCaller(ns, seed, deadline) {
  const g = Guard.fromUrl(redis.url, { namespace: ns, timeoutMs: 5000 }); // one Lambda instance
  const side = redis.client();
  const best = {};
  let granted = 0;
  let throttled = 0;
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  while (Date.now() < deadline) {
    const fn = FUNCTIONS[Math.floor(rnd() * FUNCTIONS.length)];
    let lease;
    try {
      lease = await g.acquire(fn, { ttlMs: 30_000 });
    } catch (e) {
      if (!(e instanceof Throttled)) throw e;
      throttled++;
      continue;
    }
    granted++;
    const keys = LEVELS[fn].map((lvl) => `holders:{${ns}}:${lvl}`);
    const incr = await Promise.all(keys.map((k) => side.incr(k)));
    LEVELS[fn].forEach((lvl, i) => (best[lvl] = Math.max(best[lvl] ?? 0, incr[i])));
    await sleep(rnd() * 2);
    await Promise.all(keys.map((k) => side.decr(k)));
    await lease.release();
  }
  await g.close();
  side.disconnect();
  return { best, granted, throttled };
}

test("Python and Node clients share the limits: never above any, every slot returned", async () => {
  const ns = newNs("x");
  await admin.call(ns, "set_namespace", [], { max_concurrency: LIMITS.a });
  await admin.call(ns, "put_group", ["etl"], { max_concurrency: LIMITS["g:etl"], members: ["ingest", "transform"] });
  await admin.call(ns, "put_group", ["api"], { reserved: 2, members: ["login"] });
  await admin.call(ns, "put_function", ["ingest"], { max_concurrency: LIMITS["f:ingest"] });
  await admin.call(ns, "put_function", ["login"], { max_concurrency: LIMITS["f:login"] });

  const py = pythonHammer(ns);
  await sleep(500); // let the Python threads start: the two runtimes overlap for most of the run
  const deadline = Date.now() + (SECONDS - 1) * 1000;
  const nodes = await Promise.all([1, 2, 3, 4, 5, 6].map((s) => nodeCaller(ns, s * 7919, deadline)));
  const pyOut = await py;

  const seen = {};
  for (const n of nodes) for (const [k, v] of Object.entries(n.best)) seen[k] = Math.max(seen[k] ?? 0, v);
  for (const [k, v] of Object.entries(pyOut)) if (k.startsWith("max:")) seen[k.slice(4)] = Math.max(seen[k.slice(4)] ?? 0, v);
  const nodeGranted = nodes.reduce((a, n) => a + n.granted, 0);
  const nodeThrottled = nodes.reduce((a, n) => a + n.throttled, 0);
  assert.ok(nodeGranted > 100 && pyOut.granted > 100, `both runtimes were admitted: node ${nodeGranted}, python ${pyOut.granted}`);
  assert.ok(nodeThrottled + pyOut.throttled > 0, "real contention happened");
  for (const [level, limit] of Object.entries(LIMITS)) assert.ok((seen[level] ?? 0) <= limit, `${level}: ${JSON.stringify(seen)}`);
  assert.ok(seen.a === LIMITS.a || seen["g:etl"] === LIMITS["g:etl"], `a limit was reached: ${JSON.stringify(seen)}`);
  const u = await admin.call(ns, "usage");
  assert.equal(u.account.in_use, 0, "every slot came back");
  for (const grp of Object.values(u.groups)) assert.equal(grp.in_use, 0);
  console.log(`# cross-runtime: node ${nodeGranted} granted / ${nodeThrottled} throttled, python ${pyOut.granted} / ${pyOut.throttled}, max holders ${JSON.stringify(seen)}`);
});
