// The package itself: the Lua copies are the repository's guard/lua, each lease script is
// assembled exactly as the Python SDK registers it, and the ESM and CommonJS entries export
// the same objects.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import * as esm from "../dist/esm/index.mjs";
import { HERE, REPO, python } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const REPO_LUA = join(REPO, "guard", "lua");

test("the package's Lua files are byte-for-byte the repository's guard/lua", () => {
  const theirs = readdirSync(REPO_LUA).filter((f) => f.endsWith(".lua")).sort();
  const ours = readdirSync(esm.LUA_DIR).filter((f) => f.endsWith(".lua")).sort();
  assert.deepEqual(ours, theirs, "rebuild the package (npm run build) after changing guard/lua");
  for (const f of theirs) {
    const a = readFileSync(join(esm.LUA_DIR, f));
    const b = readFileSync(join(REPO_LUA, f));
    assert.ok(a.equals(b), `${f} differs from guard/lua/${f}: rebuild the package (npm run build)`);
  }
});

test("each lease script is assembled exactly as guard/store.py registers it (same SHA)", () => {
  const out = python(
    [
      "import json, redis",
      "from guard.scripts import LEASE_SCRIPTS",
      "from guard.store import RedisStore",
      "s = RedisStore(redis.Redis(port=1))  # never connects",
      "s.close()",
      "print(json.dumps({n: s._scripts[n].sha for n in LEASE_SCRIPTS}))",
    ].join("\n"),
  );
  const py = JSON.parse(out);
  const node = esm.leaseScripts();
  assert.deepEqual(Object.keys(node).sort(), Object.keys(py).sort());
  for (const [name, src] of Object.entries(node)) {
    assert.equal(createHash("sha1").update(src).digest("hex"), py[name], `${name}.lua assembled differently`);
  }
});

test("constants and key names match guard/keys.py", () => {
  const py = JSON.parse(
    python(
      "import json; from guard import keys; print(json.dumps({'d': keys.DEFAULT_LEASE_TTL, 'm': keys.MAX_LEASE_TTL, " +
        "'b': keys.BACKSTOP_TTL, 'k': keys.lease_keys('x.y'), 'c': keys.release_channel('x.y'), " +
        "'pv': __import__('guard.wire').wire.PROTOCOL_VERSION}))",
    ),
  );
  assert.equal(esm.DEFAULT_LEASE_TTL_MS, py.d * 1000);
  assert.equal(esm.MAX_LEASE_TTL_MS, py.m * 1000);
  assert.equal(esm.BACKSTOP_TTL_MS, py.b * 1000);
  assert.deepEqual(esm.leaseKeys("x.y"), py.k);
  assert.equal(esm.releaseChannel("x.y"), py.c);
  assert.equal(esm.PROTOCOL_VERSION, py.pv);
});

test("ESM and CommonJS entries export the same objects (one Guard class, one error hierarchy)", () => {
  const cjs = require("../dist/cjs/index.js");
  const pkg = require("guard-concurrency");
  assert.equal(pkg, cjs, "the package's own name resolves to the CommonJS build");
  for (const name of ["Guard", "Lease", "GuardError", "Throttled", "GuardUnavailable", "UsageError", "apiGateway", "sqs", "middleware"]) {
    assert.equal(typeof esm[name], "function", name);
    assert.equal(esm[name], cjs[name], name);
  }
  assert.ok(new esm.Throttled("f", "function", 1) instanceof cjs.GuardError);
  assert.ok(new esm.ProtocolMismatch("x") instanceof cjs.StoreError);
  const decl = readFileSync(join(HERE, "..", "dist", "cjs", "index.d.ts"), "utf8");
  assert.match(decl, /export \{ Guard/);
});

test("the declarations type ESM and CommonJS consumers (tsc --noEmit, NodeNext)", () => {
  const tsc = join(HERE, "..", "node_modules", "typescript", "bin", "tsc");
  const out = spawnSync(process.execPath, [tsc, "-p", join(HERE, "types", "tsconfig.json")], { encoding: "utf8", timeout: 120_000 });
  assert.equal(out.status, 0, out.stdout + out.stderr);
});
