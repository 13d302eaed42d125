// Shared driver for the Node peers (redis-semaphore, bottleneck).
//
// argv[2] is a JSON object: {host, port, key, workload: "uncontended"|"contended", workers,
// mode: "shared"|"conns"|"procs", seconds, max_pairs, limit, ttl_ms, hold_ms, retry_ms,
// counter_key}. Prints one JSON line: pairs, seconds, pairs_per_s, p50_us, p99_us (latency of one
// acquire+release pair, the hold excluded, waiting for a slot included), refused,
// attempts_per_pair, max_holders and the raw INFO text taken just before and after the timed
// phase (on a separate connection, after every caller connected and ran one warm-up pair).
//
// Workers are concurrent async callers. mode "shared": one process, one connection (one
// limiter) for all callers, so ioredis pipelines their commands; "conns": one process, one
// connection (one limiter) per caller; "procs": one process per caller, each with its own
// connection, like separate Lambda instances.
//
// Contended workload: after a grant the caller INCRs `counter_key` on a separate connection (one
// per process), holds hold_ms, DECRs, then releases. max_holders is the largest INCR result seen:
// the most simultaneous holders observed outside the library, across all processes.
//
// A subject module calls main(subject) with {name, open(args) -> resource, session(resource,
// args) -> {acquire(leaseId) -> handle|null, release(handle)} or {run(fn)}, close(resource)}.

import { fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import Redis from "ioredis";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[i];
}

async function info(admin) {
  return await admin.call("INFO", "cpu", "commandstats", "stats", "memory");
}

// One caller: back-to-back pairs until the deadline or max_pairs.
async function caller(session, args, counter, deadline, maxPairs, wid) {
  const lat = [];
  let attempts = 0;
  let refused = 0;
  let maxHolders = 0;
  const contended = args.workload === "contended";
  const prefix = `${wid}-${randomUUID().slice(0, 8)}`;
  const holdSection = async () => {
    if (!contended) return 0n;
    const t = process.hrtime.bigint();
    const n = await counter.incr(args.counter_key);
    if (n > maxHolders) maxHolders = n;
    await sleep(args.hold_ms);
    await counter.decr(args.counter_key);
    return process.hrtime.bigint() - t;
  };
  for (let i = 0; i < maxPairs && Date.now() < deadline; i++) {
    const leaseId = `${prefix}-${i}`;
    const t0 = process.hrtime.bigint();
    if (session.run) {
      // bottleneck: the library queues the job until a slot is free; no refusals to retry.
      let held = 0n;
      await session.run(async () => {
        held = await holdSection();
      });
      attempts += 1;
      lat.push(Number(process.hrtime.bigint() - t0 - held) / 1000);
      continue;
    }
    let handle = await session.acquire(leaseId);
    attempts += 1;
    while (handle === null && Date.now() < deadline) {
      refused += 1;
      await sleep(args.retry_ms);
      handle = await session.acquire(leaseId);
      attempts += 1;
    }
    if (handle === null) break;
    const held = await holdSection();
    await session.release(handle);
    lat.push(Number(process.hrtime.bigint() - t0 - held) / 1000);
  }
  return { lat, attempts, refused, maxHolders };
}

// Runs `n` callers in this process; `ready()` resolves once all are warm, returns the runner.
async function prepare(subject, args, n, perCallerResource) {
  const resources = [];
  const sessions = [];
  for (let w = 0; w < n; w++) {
    if (w === 0 || perCallerResource) resources.push(await subject.open(args));
    sessions.push(subject.session(resources[resources.length - 1], args));
  }
  const counter =
    args.workload === "contended" ? new Redis({ host: args.host, port: args.port }) : null;
  if (counter) await counter.ping();
  // one warm-up pair per caller: connections up, scripts loaded, before anything is timed
  await Promise.all(
    sessions.map(async (s, w) => {
      if (s.run) return await s.run(async () => null);
      const h = await s.acquire(`warm-${w}-${randomUUID()}`);
      if (h !== null) await s.release(h);
    }),
  );
  const run = async (wid0) => {
    const deadline = Date.now() + args.seconds * 1000;
    const outs = await Promise.all(
      sessions.map((s, w) => caller(s, args, counter, deadline, args.max_pairs, wid0 + w)),
    );
    return {
      lat: outs.flatMap((o) => o.lat),
      attempts: outs.reduce((a, o) => a + o.attempts, 0),
      refused: outs.reduce((a, o) => a + o.refused, 0),
      maxHolders: outs.reduce((a, o) => Math.max(a, o.maxHolders), 0),
    };
  };
  const close = async () => {
    for (const r of resources) await subject.close(r);
    if (counter) counter.disconnect();
  };
  return { run, close, connections: resources.length * (subject.connectionsPerResource ?? 1) };
}

function summarize(subject, args, agg, seconds, before, after, connections) {
  const lat = Float64Array.from(agg.lat).sort();
  const pairs = lat.length;
  return {
    subject: subject.name,
    workload: args.workload,
    mode: args.mode,
    workers: args.workers,
    connections,
    pairs,
    seconds,
    pairs_per_s: seconds > 0 ? pairs / seconds : 0,
    p50_us: percentile(lat, 0.5),
    p99_us: percentile(lat, 0.99),
    refused: agg.refused,
    attempts_per_pair: pairs ? agg.attempts / pairs : null,
    max_holders: args.workload === "contended" ? agg.maxHolders : null,
    counter: args.workload === "contended" ? "redis INCR/DECR, separate connection" : null,
    info_before: before,
    info_after: after,
  };
}

async function runChild(subject, args) {
  const runner = await prepare(subject, args, 1, false);
  process.send({ type: "ready" });
  process.once("message", async (msg) => {
    const out = await runner.run(msg.wid);
    await runner.close();
    process.send({ type: "done", out, t_end: Date.now() }, () => process.exit(0));
  });
}

async function runParent(subject, args) {
  const admin = new Redis({ host: args.host, port: args.port });
  const children = [];
  try {
    let runner = null;
    let connections;
    if (args.mode === "procs") {
      const childArgs = JSON.stringify({ ...args, _child: true });
      const readies = [];
      for (let w = 0; w < args.workers; w++) {
        const stdio = ["ignore", "ignore", "inherit", "ipc"];
        const child = fork(process.argv[1], [childArgs], { stdio });
        children.push(child);
        readies.push(
          new Promise((resolve, reject) => {
            child.once("message", resolve);
            child.once("exit", (code) => reject(new Error(`child exited ${code}`)));
          }),
        );
      }
      await Promise.all(readies);
      connections = args.workers * (subject.connectionsPerResource ?? 1);
    } else {
      runner = await prepare(subject, args, args.workers, args.mode === "conns");
      connections = runner.connections;
    }
    const before = await info(admin);
    const t0 = Date.now();
    let agg;
    if (runner) {
      agg = await runner.run(0);
    } else {
      const dones = children.map(
        (child, w) =>
          new Promise((resolve, reject) => {
            child.on("message", (m) => m.type === "done" && resolve(m.out));
            child.once("exit", (code) => code !== 0 && reject(new Error(`child exited ${code}`)));
            child.send({ wid: w * 1_000_000 });
          }),
      );
      const outs = await Promise.all(dones);
      agg = {
        lat: outs.flatMap((o) => o.lat),
        attempts: outs.reduce((a, o) => a + o.attempts, 0),
        refused: outs.reduce((a, o) => a + o.refused, 0),
        maxHolders: outs.reduce((a, o) => Math.max(a, o.maxHolders), 0),
      };
    }
    const seconds = (Date.now() - t0) / 1000;
    const after = await info(admin);
    if (runner) await runner.close();
    console.log(JSON.stringify(summarize(subject, args, agg, seconds, before, after, connections)));
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    admin.disconnect();
  }
}

export async function main(subject) {
  const args = JSON.parse(process.argv[2]);
  const watchdog = setTimeout(() => {
    console.error("watchdog: run took too long");
    process.exit(3);
  }, (args.seconds + 90) * 1000);
  watchdog.unref();
  if (args._child) await runChild(subject, args);
  else {
    await runParent(subject, args);
    process.exit(0);
  }
}
