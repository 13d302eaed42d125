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

// The Python side: tests/contention_worker.py's hammer, 4 threads, one workload ("levels" or
// "cross-keys"), for `seconds`; resolves to its JSON result (max:<level>, granted, throttled).
function pythonHammer(ns, workload, seconds) {
  const code = [
    "import json, sys",
    `sys.path.insert(0, ${JSON.stringify(join(REPO, "tests"))})`,
    "from contention_worker import hammer",
    `print(json.dumps(hammer(${JSON.stringify(redis.url)}, ${JSON.stringify(ns)}, 4, 100000, ${seconds}, ${JSON.stringify(workload)})))`,
  ].join("\n");
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, ["-c", code], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`python hammer (${workload}) exited ${code}`))));
  });
}

// One Node caller (one Lambda instance) until `deadline`, by the same rule as the Python
// hammer: `workload.pick(rnd)` names the function, the key (or none) and the counted levels a
// grant holds; a refusal sleeps `workload.pauseMs`.
async function nodeCaller(ns, seed, deadline, workload) {
  const g = Guard.fromUrl(redis.url, { namespace: ns, timeoutMs: 5000 });
  const side = redis.client();
  const best = {};
  let granted = 0;
  let throttled = 0;
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  while (Date.now() < deadline) {
    const { fn, key, levels } = workload.pick(rnd);
    let lease;
    try {
      lease = await g.acquire(fn, key === undefined ? { ttlMs: 30_000 } : { key, ttlMs: 30_000 });
    } catch (e) {
      if (!(e instanceof Throttled)) throw e;
      throttled++;
      if (workload.pauseMs) await sleep(workload.pauseMs);
      continue;
    }
    granted++;
    const counters = levels.map((lvl) => `holders:{${ns}}:${lvl}`);
    const incr = await Promise.all(counters.map((k) => side.incr(k)));
    levels.forEach((lvl, i) => (best[lvl] = Math.max(best[lvl] ?? 0, incr[i])));
    await sleep(rnd() * 2);
    await Promise.all(counters.map((k) => side.decr(k)));
    await lease.release();
  }
  await g.close();
  side.disconnect();
  return { best, granted, throttled };
}

// The Python hammer (`pyWorkload`) and one Node caller per seed (`workload`) on `ns` at once;
// checks that both runtimes were admitted and that real contention happened, and returns the
// largest counted holders per level over both (`seen`) and each side's counts.
async function bothRuntimes(ns, pyWorkload, workload, seeds) {
  const py = pythonHammer(ns, pyWorkload, SECONDS);
  await sleep(500); // let the Python threads start: the two runtimes overlap for most of the run
  const deadline = Date.now() + (SECONDS - 1) * 1000;
  const nodes = await Promise.all(seeds.map((s) => nodeCaller(ns, s, deadline, workload)));
  const pyOut = await py;
  const seen = {};
  for (const n of nodes) for (const [k, v] of Object.entries(n.best)) seen[k] = Math.max(seen[k] ?? 0, v);
  for (const [k, v] of Object.entries(pyOut)) if (k.startsWith("max:")) seen[k.slice(4)] = Math.max(seen[k.slice(4)] ?? 0, v);
  const nodeGranted = nodes.reduce((a, n) => a + n.granted, 0);
  const nodeThrottled = nodes.reduce((a, n) => a + n.throttled, 0);
  assert.ok(nodeGranted > 100 && pyOut.granted > 100, `both runtimes were admitted: node ${nodeGranted}, python ${pyOut.granted}`);
  assert.ok(nodeThrottled + pyOut.throttled > 0, "real contention happened");
  return { seen, nodeGranted, nodeThrottled, pyOut };
}

const LEVEL_WORKLOAD = {
  pick(rnd) {
    const fn = FUNCTIONS[Math.floor(rnd() * FUNCTIONS.length)];
    return { fn, levels: LEVELS[fn] };
  },
  pauseMs: 0,
};

test("Python and Node clients share the limits: never above any, every slot returned", async () => {
  const ns = newNs("x");
  await admin.call(ns, "set_namespace", [], { max_concurrency: LIMITS.a });
  await admin.call(ns, "put_group", ["etl"], { max_concurrency: LIMITS["g:etl"], members: ["ingest", "transform"] });
  await admin.call(ns, "put_group", ["api"], { reserved: 2, members: ["login"] });
  await admin.call(ns, "put_function", ["ingest"], { max_concurrency: LIMITS["f:ingest"] });
  await admin.call(ns, "put_function", ["login"], { max_concurrency: LIMITS["f:login"] });

  const { seen, nodeGranted, nodeThrottled, pyOut } = await bothRuntimes(ns, "levels", LEVEL_WORKLOAD, [1, 2, 3, 4, 5, 6].map((s) => s * 7919));

  for (const [level, limit] of Object.entries(LIMITS)) assert.ok((seen[level] ?? 0) <= limit, `${level}: ${JSON.stringify(seen)}`);
  assert.ok(seen.a === LIMITS.a || seen["g:etl"] === LIMITS["g:etl"], `a limit was reached: ${JSON.stringify(seen)}`);
  const u = await admin.call(ns, "usage");
  assert.equal(u.account.in_use, 0, "every slot came back");
  for (const grp of Object.values(u.groups)) assert.equal(grp.in_use, 0);
  console.log(`# cross-runtime: node ${nodeGranted} granted / ${nodeThrottled} throttled, python ${pyOut.granted} / ${pyOut.throttled}, max holders ${JSON.stringify(seen)}`);
});

// Per-key limits across runtimes: Python and Node holders on the same keys of one function
// (key_max_concurrency 2, one key overridden to 3, the function's total 6), counted outside
// both SDKs per key and in total. No key may ever hold more than its cap, the total never more
// than the function's max, and every per-key counter comes back to 0.
const KEYS = ["acme", "globex", "initech"]; // contention_worker.CROSS_KEYS
const KEY_CAPS = { acme: 2, globex: 2, initech: 3 };
const KEYED_TOTAL = 6;

const KEY_WORKLOAD = {
  pick(rnd) {
    const key = KEYS[Math.floor(rnd() * KEYS.length)];
    return { fn: "keyed", key, levels: [`k:${key}`, "total"] };
  },
  pauseMs: 0.5,
};

test("per-key limits: Python and Node holders of the same keys never exceed a key's cap or the total", async () => {
  const ns = newNs("xk");
  await admin.call(ns, "put_function", ["keyed"], { max_concurrency: KEYED_TOTAL, key_max_concurrency: 2, key_overrides: { initech: 3 } });
  const { seen, nodeGranted, nodeThrottled, pyOut } = await bothRuntimes(ns, "cross-keys", KEY_WORKLOAD, [1, 2, 3, 4].map((s) => s * 104729));
  for (const key of KEYS) assert.ok((seen[`k:${key}`] ?? 0) <= KEY_CAPS[key], `${key}: ${JSON.stringify(seen)}`);
  assert.ok(seen.total <= KEYED_TOTAL, JSON.stringify(seen));
  assert.ok(KEYS.some((k) => seen[`k:${k}`] === KEY_CAPS[k]), `a key's cap was reached: ${JSON.stringify(seen)}`);
  const u = await admin.call(ns, "usage");
  assert.equal(u.functions.keyed.in_use, 0, "every slot came back");
  const c = redis.client();
  const left = await c.hkeys(`guard:{${ns}}:use`);
  c.disconnect();
  assert.deepEqual(left.filter((f) => f.startsWith("k:")), [], "no per-key counter is left once idle");
  console.log(`# cross-runtime keys: node ${nodeGranted} granted / ${nodeThrottled} throttled, python ${pyOut.granted} / ${pyOut.throttled}, max holders ${JSON.stringify(seen)}`);
});
