// The shared test vectors (tests/vectors/*.json, format in tests/vectors/README.md) through the
// Node SDK's own script layer (`RedisStore`: its assembly of the scripts, its argument
// encoding, its reply decoding and error translation), against a real redis-server. Config
// steps go through the Python SDK's Admin.replace_config (what PUT /config does); everything
// else is the Node SDK. The Python runner is tests/test_vectors.py: both run the same files.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ConflictError, ProtocolMismatch, RedisStore, leaseKeys } from "../dist/esm/index.mjs";
import { newNs, PyAdmin, RedisProc, REPO, sleep } from "./helpers.mjs";

const VECTORS = join(REPO, "tests", "vectors");
const FILES = readdirSync(VECTORS).filter((f) => f.endsWith(".json")).sort();
const ERRORS = { CONFLICT: ConflictError, PROTOCOL: ProtocolMismatch };
const KEYS = { cfg: 0, use: 1, exp: 2, lease: 3 };

let redis, admin, store, client;

before(async () => {
  redis = await RedisProc.start();
  admin = new PyAdmin(redis.url);
  store = RedisStore.fromUrl(redis.url, { timeoutMs: 2000, connectTimeoutMs: 2000 });
  client = redis.client();
});

after(async () => {
  await store.close();
  client.disconnect();
  await admin.close();
  await redis.cleanup();
});

/** Runs one file's steps in a fresh namespace; `where` names the file and step on a failure. */
class Runner {
  constructor(ns, name) {
    this.ns = ns;
    this.name = name;
    this.base = null; // the file's first fence, minus 1 (fences are relative)
    this.names = { groups: new Set(), functions: new Set() }; // levels configured so far
  }

  async step(i, step) {
    const where = `${this.name} step ${i} (${step.op})`;
    const expect = step.expect ?? {};
    switch (step.op) {
      case "config":
        await admin.call(this.ns, "replace_config_doc", [step.config]);
        this.remember(step.config);
        break;
      case "acquire":
        await this.acquire(where, step, expect);
        break;
      case "renew": {
        const r = await store.renew(this.ns, Buffer.from(step.lease, "hex"), step.ttl_ms ?? 0);
        assert.equal(r !== null, expect.renewed, where);
        if (r !== null && "ttl_ms" in expect) assert.equal(r.ttlMs, expect.ttl_ms, where);
        break;
      }
      case "release":
        assert.equal(await store.release(this.ns, Buffer.from(step.lease, "hex")), expect.released, where);
        break;
      case "sleep":
        await sleep(step.ms);
        break;
      case "hset":
        assert.ok(step.key in KEYS, `${where}: unknown key ${step.key}`);
        await client.hset(leaseKeys(this.ns)[KEYS[step.key]], step.field, step.value);
        break;
      default:
        assert.fail(`${where}: unknown op`);
    }
    if ("usage" in step) await this.usage(where, step.usage);
    if ("counters" in step) {
      const want = step.counters;
      const got = await store.usageFields(this.ns, Object.keys(want));
      const seen = Object.fromEntries(Object.keys(want).map((k) => [k, Number(got[k] ?? 0)]));
      assert.deepEqual(seen, want, `${where}: counters`);
    }
  }

  remember(doc) {
    for (const [g, fields] of Object.entries(doc.groups ?? {})) {
      this.names.groups.add(g);
      for (const m of fields.members ?? []) this.names.functions.add(m);
    }
    for (const f of Object.keys(doc.functions ?? {})) this.names.functions.add(f);
  }

  async acquire(where, step, expect) {
    const call = () =>
      store.acquire(this.ns, step.function, Buffer.from(step.lease, "hex"), step.ttl_ms ?? 0, 0, undefined, step.key);
    if ("error" in expect) {
      const cls = ERRORS[expect.error];
      assert.ok(cls, `${where}: unknown error ${expect.error}`);
      await assert.rejects(call(), (e) => e instanceof cls, where);
      return;
    }
    const r = await call();
    assert.equal(r.granted, expect.granted, `${where}: ${JSON.stringify(r)}`);
    let got;
    if (r.granted) {
      if (this.base === null) this.base = r.fence - 1;
      got = {
        granted: true,
        fence: r.fence - this.base,
        ttl_ms: r.ttlMs,
        groups: r.groups,
        shadow_scope: r.shadowScope,
        on_unavailable: r.onUnavailable,
      };
    } else {
      got = { granted: false, scope: r.scope, on_unavailable: r.onUnavailable };
      if ("retry_after_ms" in expect) {
        const [lo, hi] = expect.retry_after_ms;
        assert.ok(lo <= r.retryAfterMs && r.retryAfterMs <= hi, `${where}: retry_after ${r.retryAfterMs}`);
      }
    }
    // every key present in expect is compared; a key the runner does not know fails the step
    const keys = Object.keys(expect).filter((k) => k !== "retry_after_ms");
    for (const k of keys) assert.ok(k in got, `${where}: unknown expect key ${k}`);
    assert.deepEqual(Object.fromEntries(keys.map((k) => [k, got[k]])), Object.fromEntries(keys.map((k) => [k, expect[k]])), where);
  }

  /** In-use counts as GET /usage shows them: `a`, `g:<group>`, `f:<function>` of the use hash
   * (read_usage.lua, which reaps first), for every level configured or expected, plus the
   * functions without a config the script reports by itself. Unlisted levels must be 0. */
  async usage(where, want) {
    const groups = new Set([...this.names.groups, ...Object.keys(want.groups)]);
    const functions = new Set([...this.names.functions, ...Object.keys(want.functions)]);
    const fields = [...[...groups].map((g) => `g:${g}`), ...[...functions].map((f) => `f:${f}`)];
    const got = await store.usageFields(this.ns, fields);
    assert.equal(Number(got.a ?? 0), want.account, `${where}: account in use`);
    for (const [level, prefix] of [["groups", "g:"], ["functions", "f:"]]) {
      const seen = {};
      for (const [k, v] of Object.entries(got)) {
        if (k.startsWith(prefix) && Number(v) !== 0) seen[k.slice(prefix.length)] = Number(v);
      }
      const exp = Object.fromEntries(Object.entries(want[level]).filter(([, v]) => v !== 0));
      assert.deepEqual(seen, exp, `${where}: ${level} in use`);
    }
  }
}

test("the vector files are there (tests/vectors)", () => {
  assert.ok(FILES.length >= 12, FILES.join(", "));
});

for (const file of FILES) {
  const name = file.replace(/\.json$/, "");
  test(name, async () => {
    const vector = JSON.parse(readFileSync(join(VECTORS, file), "utf8"));
    assert.equal(vector.name, name);
    const ns = newNs("vec");
    try {
      const run = new Runner(ns, name);
      for (const [i, step] of vector.steps.entries()) await run.step(i, step);
    } finally {
      const stale = await client.keys(`guard:{${ns}}:*`);
      if (stale.length) await client.del(...stale);
    }
  });
}
