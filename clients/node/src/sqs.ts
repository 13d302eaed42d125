/**
 * The SQS visibility backoff of the `sqs` adapter: queue URLs from ARNs and
 * ChangeMessageVisibilityBatch calls through the AWS SDK v3 (`@aws-sdk/client-sqs`, loaded
 * only when a refused batch is delayed), every call aborted at the invocation's deadline.
 */
export const BATCH = 10; // ChangeMessageVisibilityBatch takes at most 10 entries
export const MAX_VISIBILITY = 43_200; // SQS: 12 hours
/** A call is started only with at least this many ms left before the deadline. */
export const MIN_CALL_MS = 50;
const DOMAINS: Record<string, string> = { "aws-cn": "amazonaws.com.cn" };

export interface SqsRecord {
  messageId: string;
  receiptHandle?: string;
  eventSourceARN?: string;
  [k: string]: unknown;
}

/** What the backoff needs of an SQS client: the v3 `send(command, { abortSignal })`. */
export interface SqsClientLike {
  send(command: unknown, options?: { abortSignal?: AbortSignal }): Promise<unknown>;
}

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface DelayOptions {
  /** When (Date.now() ms) every call must have ended. */
  deadline: number;
  /** An SQS client (default: one per region, 1 s connect and request timeouts, 2 attempts). */
  client?: SqsClientLike;
  /** For reproducible jitter in tests: a function returning [0, 1). */
  random?: () => number;
  logger?: Logger;
}

/** `arn:<partition>:sqs:<region>:<account>:<name>` → [partition, region, account, name]. */
export function parseQueueArn(arn: string): [string, string, string, string] {
  const p = arn.split(":");
  if (p.length !== 6 || p[0] !== "arn" || p[2] !== "sqs" || !p.slice(3).every((x) => x)) {
    throw new Error(`not an SQS queue ARN: ${JSON.stringify(arn)}`);
  }
  return [p[1], p[3], p[4], p[5]];
}

function endpointUrl(): string | null {
  return process.env.AWS_ENDPOINT_URL_SQS || process.env.AWS_ENDPOINT_URL || null;
}

/** The queue URL for `arn`, derived without an API call: the regional endpoint, or
 * `<endpoint>/<account>/<name>` with AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL set. */
export function queueUrl(arn: string): string {
  const [partition, region, account, name] = parseQueueArn(arn);
  const endpoint = endpointUrl();
  if (endpoint === null) return `https://sqs.${region}.${DOMAINS[partition] ?? "amazonaws.com"}/${account}/${name}`;
  return `${endpoint.replace(/\/+$/, "")}/${account}/${name}`;
}

type SqsModule = typeof import("@aws-sdk/client-sqs");
let sqsModule: Promise<SqsModule> | null = null;
const clients = new Map<string, SqsClientLike>(); // per region and endpoint, made once

function loadSdk(): Promise<SqsModule> {
  sqsModule ??= import("@aws-sdk/client-sqs");
  return sqsModule;
}

async function clientFor(region: string, mod: SqsModule): Promise<SqsClientLike> {
  const endpoint = endpointUrl();
  const key = `${region}|${endpoint ?? ""}`;
  let c = clients.get(key);
  if (c === undefined) {
    c = new mod.SQSClient({
      region,
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 1000, requestTimeout: 1000 },
      ...(endpoint ? { endpoint } : {}),
    }) as SqsClientLike;
    clients.set(key, c);
  }
  return c;
}

function abortAt(deadline: number): AbortSignal {
  return AbortSignal.timeout(Math.max(1, deadline - Date.now()));
}

/**
 * Hide each record's message for a random whole number of seconds in [lo, hi]. Returns how
 * many were changed. A call starts only with MIN_CALL_MS left and is aborted at the deadline;
 * messages left when time runs out are not delayed. Every failure (bad record, API error,
 * failed entry, no time left) is logged and skipped: the backoff is a courtesy, the refusal
 * itself must still be reported.
 */
export async function delayMessages(records: SqsRecord[], backoff: [number, number], o: DelayOptions): Promise<number> {
  const log = o.logger ?? console;
  const random = o.random ?? Math.random;
  const byQueue = new Map<string, SqsRecord[]>();
  for (const r of records) {
    if (typeof r.eventSourceARN === "string" && typeof r.receiptHandle === "string") {
      const list = byQueue.get(r.eventSourceARN) ?? [];
      list.push(r);
      byQueue.set(r.eventSourceARN, list);
    } else {
      log.warn(`record ${String(r.messageId)} has no eventSourceARN/receiptHandle`);
    }
  }
  let changed = 0;
  for (const [arn, recs] of byQueue) {
    let url: string;
    let client: SqsClientLike;
    let mod: SqsModule;
    try {
      const region = parseQueueArn(arn)[1];
      url = queueUrl(arn);
      mod = await withDeadline(loadSdk(), o.deadline, "loading @aws-sdk/client-sqs");
      client = o.client ?? (await clientFor(region, mod));
    } catch (err) {
      log.warn(`visibility backoff skipped for ${arn}: ${(err as Error).message}`);
      continue;
    }
    for (let i = 0; i < recs.length; i += BATCH) {
      const left = o.deadline - Date.now();
      if (left < MIN_CALL_MS) {
        log.warn(
          `visibility backoff: ${recs.length - i} message(s) of ${arn} not delayed: ${Math.max(0, left)} ms ` +
            "left before the invocation's deadline is too little for another call",
        );
        break;
      }
      const chunk = recs.slice(i, i + BATCH);
      const entries = chunk.map((r, j) => ({
        Id: `m${j}`,
        ReceiptHandle: r.receiptHandle as string,
        VisibilityTimeout: backoff[0] + Math.floor(random() * (backoff[1] - backoff[0] + 1)),
      }));
      let out: { Successful?: unknown[]; Failed?: { Id?: string; Code?: string; Message?: string }[] };
      try {
        const cmd = new mod.ChangeMessageVisibilityBatchCommand({ QueueUrl: url, Entries: entries });
        out = (await client.send(cmd, { abortSignal: abortAt(o.deadline) })) as typeof out;
      } catch (err) {
        log.warn(`ChangeMessageVisibilityBatch on ${url} failed: ${(err as Error).message}`);
        continue;
      }
      for (const f of out.Failed ?? []) {
        const idx = Number(String(f.Id ?? "m-1").slice(1));
        log.warn(`visibility backoff failed for message ${String(chunk[idx]?.messageId)}: ${f.Code} ${f.Message}`);
      }
      changed += (out.Successful ?? []).length;
    }
  }
  return changed;
}

function withDeadline<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no time left before the deadline`)), Math.max(0, deadline - Date.now()));
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
