// Test harness: a real redis-server on a free port (never 6379), started and stopped by the
// tests themselves, and admin writes through the Python SDK (the reference implementation)
// running from the repository's .venv.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import Redis from "ioredis";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = join(HERE, "..", "..", "..");
export const PYTHON = process.env.GUARD_PYTHON || join(REPO, ".venv", "bin", "python");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  for (;;) {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    const { port } = srv.address();
    srv.close();
    await once(srv, "close");
    if (port !== 6379) return port;
  }
}

/** One redis-server process on `port` (a new free port by default), no persistence. */
export class RedisProc {
  constructor(port) {
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), "guard-node-redis-"));
    this.proc = null;
  }

  static async start(port, extra = []) {
    const r = new RedisProc(port ?? (await freePort()));
    await r.start(extra);
    return r;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  async start(extra = []) {
    this.extra = extra.length ? extra : (this.extra ?? []);
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir, ...this.extra];
    this.proc = spawn("redis-server", args, { stdio: "ignore" });
    const c = new Redis({ port: this.port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: true });
    c.on("error", () => {});
    for (let i = 0; i < 200; i++) {
      try {
        await c.connect();
        await c.ping();
        c.disconnect();
        return this;
      } catch {
        await sleep(25);
      }
    }
    throw new Error(`redis-server did not start on ${this.port}`);
  }

  client() {
    const c = new Redis({ port: this.port, host: "127.0.0.1" });
    c.on("error", () => {});
    return c;
  }

  async stop(signal = "SIGTERM") {
    if (!this.proc || this.proc.exitCode !== null) return;
    const p = once(this.proc, "exit");
    this.proc.kill(signal);
    await p;
  }

  pause() {
    this.proc.kill("SIGSTOP");
  }

  resume() {
    this.proc.kill("SIGCONT");
  }

  async cleanup() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGCONT");
      await this.stop("SIGKILL");
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let nsCounter = 0;
export function newNs(prefix = "n") {
  return `${prefix}${process.pid}-${nsCounter++}`;
}

/** Admin calls through the Python SDK: `await admin.call(ns, "put_function", ["fn"], {max_concurrency: 1})`. */
export class PyAdmin {
  constructor(url) {
    if (!existsSync(PYTHON)) throw new Error(`no Python SDK at ${PYTHON}: run \`make setup\` first (or set GUARD_PYTHON)`);
    this.proc = spawn(PYTHON, [join(HERE, "py_admin.py"), url], { stdio: ["pipe", "pipe", "inherit"] });
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    this.queue = Promise.resolve();
  }

  call(ns, method, args = [], kwargs = {}) {
    const run = async () => {
      this.proc.stdin.write(JSON.stringify({ ns, method, args, kwargs }) + "\n");
      const { value } = await this.lines.next();
      const out = JSON.parse(value);
      if (out.error !== undefined) throw new Error(`${method}: ${out.type}: ${out.error}`);
      return out.result;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  async close() {
    this.proc.stdin.end();
    await once(this.proc, "exit");
  }
}

/** Run Python code from the repository's .venv (synchronously); returns stdout. */
export function python(code, env = {}) {
  const out = spawnSync(PYTHON, ["-c", code], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });
  if (out.status !== 0) throw new Error(`python failed (${out.status}): ${out.stderr}`);
  return out.stdout;
}

// The usual set-up of a test file: a private redis-server and the Python admin on it (started
// before the file's tests, stopped after), and `guard(ns, options)` opening a Guard on that
// server (timeoutMs 2000 unless given) that is closed after the file's tests.
export function serverFixture() {
  let Guard;
  const fx = {
    redis: null,
    admin: null,
    guards: [], // closed after the file's tests
    guard(ns, options = {}) {
      const g = Guard.fromUrl(fx.redis.url, { namespace: ns, timeoutMs: 2000, ...options });
      fx.guards.push(g);
      return g;
    },
  };
  before(async () => {
    ({ Guard } = await import("../dist/esm/index.mjs"));
    fx.redis = await RedisProc.start();
    fx.admin = new PyAdmin(fx.redis.url);
  });
  after(async () => {
    for (const g of fx.guards) await g.close();
    await fx.admin.close();
    await fx.redis.cleanup();
  });
  return fx;
}
