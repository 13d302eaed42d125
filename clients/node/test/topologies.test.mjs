// Sentinel and Cluster URLs, as in Python (guard/connect.py): the primary found through a
// Sentinel, and a namespace served from its slot on a three-primary Redis Cluster. (Failover
// itself is exercised by the Python suite, tests/faults; here: the Node client reaches and
// uses both topologies, with the same limits written by the Python admin.)
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Guard, Throttled } from "../dist/esm/index.mjs";
import { freePort, newNs, PyAdmin, RedisProc, sleep } from "./helpers.mjs";

const cleanups = [];
after(async () => {
  while (cleanups.length) await cleanups.pop()();
});

async function twoSlots(g, admin, ns) {
  await admin.call(ns, "put_function", ["f"], { max_concurrency: 2 });
  const a = await g.acquire("f");
  const b = await g.acquire("f");
  await assert.rejects(g.acquire("f"), Throttled);
  setTimeout(() => a.release(), 200);
  const c = await g.acquire("f", { waitMs: 5000 }); // woken by the release (pub/sub)
  assert.ok(c.held && c.fence === b.fence + 1);
  assert.equal((await admin.call(ns, "usage")).functions.f.in_use, 2);
  await b.release();
  await c.release();
}

test("redis+sentinel://host:port/service reaches the primary the Sentinel names", async () => {
  const primary = await RedisProc.start();
  cleanups.push(() => primary.cleanup());
  const sport = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "guard-node-sentinel-"));
  const conf = join(dir, "sentinel.conf");
  writeFileSync(conf, `port ${sport}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor svc 127.0.0.1 ${primary.port} 1\n`);
  const sentinel = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
  cleanups.push(async () => sentinel.kill("SIGKILL"));
  const url = `redis+sentinel://127.0.0.1:${sport}/svc`;
  const admin = new PyAdmin(url);
  cleanups.push(() => admin.close());
  const ns = newNs("s");
  const g = Guard.fromUrl(url, { namespace: ns, timeoutMs: 2000 });
  cleanups.push(() => g.close());
  for (let i = 0; ; i++) {
    try {
      await admin.call(ns, "get_namespace");
      break;
    } catch (e) {
      if (i > 100) throw e;
      await sleep(50); // the sentinel is starting
    }
  }
  await twoSlots(g, admin, ns);
  const c = primary.client();
  assert.ok(Number(await c.exists(`guard:{${ns}}:lease`)), "the state is on the primary");
  c.disconnect();
});

test("redis+cluster://host:port: a namespace lives in one slot of a three-primary cluster", async () => {
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    let port;
    do port = await freePort();
    while (port + 10000 > 65535);
    const n = new RedisProc(port);
    await n.start(["--cluster-enabled", "yes", "--cluster-config-file", join(n.dir, "nodes.conf"), "--cluster-node-timeout", "2000"]);
    nodes.push(n);
    cleanups.push(() => n.cleanup());
  }
  const create = spawnSync("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-yes"], { encoding: "utf8", timeout: 30_000 });
  assert.equal(create.status, 0, create.stdout + create.stderr);
  const c = nodes[0].client();
  for (let i = 0; !(await c.call("CLUSTER", "INFO")).includes("cluster_state:ok"); i++) {
    if (i > 200) throw new Error("cluster did not become ok");
    await sleep(50);
  }
  c.disconnect();
  const url = `redis+cluster://127.0.0.1:${nodes[0].port}`;
  const admin = new PyAdmin(url);
  cleanups.push(() => admin.close());
  // namespaces in slots of different primaries: MOVED is followed by the client
  for (const ns of [newNs("c"), newNs("c"), newNs("c")]) {
    const g = Guard.fromUrl(url, { namespace: ns, timeoutMs: 2000 });
    cleanups.push(() => g.close());
    await twoSlots(g, admin, ns);
  }
});
