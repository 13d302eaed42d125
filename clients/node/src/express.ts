/**
 * Express integration: the same handler and the same limits on Lambda and on ECS.
 *
 * - `lambdaToExpress(handler, options)` serves an API Gateway-style Lambda handler (payload
 *   2.0 by default, 1.0 on request) as an Express route: each request becomes an event plus a
 *   context whose deadline is `timeoutMs` away, and the handler's answer becomes the
 *   response. Wrapped with `apiGateway(g, handler)`, it takes the same leases, from the same
 *   namespace, as on Lambda (the name: AWS_LAMBDA_FUNCTION_NAME, else `functionName`).
 * - `middleware(g, options)` guards any Express route directly: a lease per request, released
 *   when the response ends; a refusal answers 429 / 503 with the same problem documents.
 *
 * Express is not a dependency: these use only the request/response methods of Node's http
 * module plus `req.originalUrl`, so any Express-compatible server works.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { boundedWait, problemResponse, refusalResponse } from "./aws";
import { GuardError, GuardUnavailable, Throttled, UsageError } from "./errors";
import { checkKey } from "./keys";
import type { Guard, LambdaContext } from "./guard";

type Req = IncomingMessage & { originalUrl?: string; body?: unknown; params?: Record<string, string> };
type Next = (err?: unknown) => void;

const TEXT_TYPES = [
  "application/json",
  "application/xml",
  "application/javascript",
  "application/x-www-form-urlencoded",
  "application/graphql",
  "application/yaml",
];

function isText(contentType: string | undefined): boolean {
  const ct = (contentType ?? "").split(";")[0].trim().toLowerCase();
  return !ct || ct.startsWith("text/") || TEXT_TYPES.includes(ct) || ct.endsWith("+json") || ct.endsWith("+xml");
}

/** A Lambda-like context whose deadline is fixed at creation. */
export function localContext(functionName: string, timeoutMs = 30_000): LambdaContext & Record<string, unknown> {
  const end = Date.now() + timeoutMs;
  return {
    functionName,
    awsRequestId: randomUUID(),
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    getRemainingTimeInMillis: () => Math.max(0, end - Date.now()),
  };
}

async function readBody(req: Req): Promise<Buffer> {
  if (Buffer.isBuffer(req.body)) return req.body; // express.raw()
  if (typeof req.body === "string") return Buffer.from(req.body);
  if (req.body !== undefined && req.body !== null && typeof req.body === "object" && req.readableEnded) {
    return Buffer.from(JSON.stringify(req.body)); // already parsed by express.json()
  }
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The API Gateway event (payload 2.0 or 1.0) for one request. */
export async function buildEvent(req: Req, version: "2.0" | "1.0" = "2.0"): Promise<Record<string, unknown>> {
  const url = new URL(req.originalUrl ?? req.url ?? "/", "http://local");
  const raw = await readBody(req);
  let body: string | null = null;
  let b64 = false;
  if (raw.length > 0) {
    if (isText(req.headers["content-type"])) body = raw.toString("utf8");
    else {
      body = raw.toString("base64");
      b64 = true;
    }
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(",") : v;
  }
  const query: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
  const now = Date.now();
  const requestId = headers["x-request-id"] ?? randomUUID();
  const sourceIp = req.socket.remoteAddress ?? "127.0.0.1";
  const pathParameters = req.params && Object.keys(req.params).length ? { ...req.params } : null;
  if (version === "2.0") {
    const { cookie, ...rest } = headers;
    const event: Record<string, unknown> = {
      version: "2.0",
      routeKey: "$default",
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      headers: rest,
      requestContext: {
        accountId: "000000000000",
        apiId: "local",
        domainName: headers.host ?? "localhost",
        requestId,
        routeKey: "$default",
        stage: "$default",
        timeEpoch: now,
        http: {
          method: req.method,
          path: url.pathname,
          protocol: `HTTP/${req.httpVersion}`,
          sourceIp,
          userAgent: headers["user-agent"] ?? "",
        },
      },
      isBase64Encoded: b64,
    };
    if (cookie) event.cookies = cookie.split(";").map((c) => c.trim()).filter((c) => c);
    if (Object.keys(query).length) event.queryStringParameters = Object.fromEntries(Object.entries(query).map(([k, v]) => [k, v.join(",")]));
    if (pathParameters) event.pathParameters = pathParameters;
    if (body !== null) event.body = body;
    return event;
  }
  return {
    resource: url.pathname,
    path: url.pathname,
    httpMethod: req.method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: Object.keys(query).length ? Object.fromEntries(Object.entries(query).map(([k, v]) => [k, v[v.length - 1]])) : null,
    multiValueQueryStringParameters: Object.keys(query).length ? query : null,
    pathParameters,
    stageVariables: null,
    requestContext: {
      accountId: "000000000000",
      apiId: "local",
      stage: "$default",
      httpMethod: req.method,
      path: url.pathname,
      requestId,
      requestTimeEpoch: now,
      identity: { sourceIp, userAgent: headers["user-agent"] ?? "" },
    },
    body,
    isBase64Encoded: b64,
  };
}

interface LambdaResult {
  statusCode?: number;
  headers?: Record<string, unknown>;
  multiValueHeaders?: Record<string, unknown[]>;
  cookies?: string[];
  body?: unknown;
  isBase64Encoded?: boolean;
}

/** Write a handler's answer as API Gateway would (2.0 infers a 200 JSON answer). */
export function writeResult(res: ServerResponse, result: unknown, version: "2.0" | "1.0" = "2.0"): void {
  let r = result as LambdaResult;
  if (!(r !== null && typeof r === "object" && "statusCode" in r)) {
    if (version === "1.0") throw new TypeError("a payload 1.0 handler must return an object with statusCode");
    r = { statusCode: 200, body: typeof result === "string" ? result : JSON.stringify(result), headers: { "content-type": "application/json" } };
  }
  res.statusCode = Number(r.statusCode);
  for (const [k, v] of Object.entries(r.multiValueHeaders ?? {})) res.setHeader(k, (Array.isArray(v) ? v : [v]).map(String));
  for (const [k, v] of Object.entries(r.headers ?? {})) res.setHeader(k, String(v));
  if (r.cookies?.length) res.setHeader("Set-Cookie", r.cookies);
  const raw = r.body;
  const data = raw === undefined || raw === null ? Buffer.alloc(0) : r.isBase64Encoded ? Buffer.from(String(raw), "base64") : Buffer.from(String(raw));
  res.setHeader("Content-Length", data.length);
  res.end(data);
}

export interface LambdaToExpressOptions {
  /** The context's functionName (the guarded name unless AWS_LAMBDA_FUNCTION_NAME is set). */
  functionName: string;
  /** The context's deadline, ms from the request's arrival; default 30000. */
  timeoutMs?: number;
  /** The event's payload version; default "2.0" (HTTP API, function URLs). */
  version?: "2.0" | "1.0";
}

/** An Express handler `(req, res, next)` that runs the Lambda `handler` for each request. */
export function lambdaToExpress<R>(
  handler: (event: Record<string, unknown>, context: LambdaContext) => Promise<R> | R,
  options: LambdaToExpressOptions,
): (req: Req, res: ServerResponse, next: Next) => Promise<void> {
  const version = options.version ?? "2.0";
  return async (req, res, next) => {
    try {
      const event = await buildEvent(req, version);
      const result = await handler(event, localContext(options.functionName, options.timeoutMs));
      writeResult(res, result, version);
    } catch (err) {
      next(err);
    }
  };
}

export interface MiddlewareOptions {
  /** The guarded name; default AWS_LAMBDA_FUNCTION_NAME. */
  function?: string;
  /** Lease TTL, ms; default: timeoutMs + the Guard's lease margin. */
  ttlMs?: number;
  /** The request's budget, ms (its lease TTL and the bound of a wait); default 30000. */
  timeoutMs?: number;
  /** Wait up to this long for a slot; default 0. */
  waitMs?: number;
  /** The request's key (per-key limits, key rate): a string, or a function of the request,
   * e.g. `(req) => req.get("x-api-key")`; undefined: no key. A key the request carries that
   * breaks the key rule (1-128 of letters, digits, '_', '-', '.') is answered 400 naming
   * `key`, without an acquire. */
  key?: string | ((req: Req) => string | null | undefined);
}

/** Express middleware: a lease per request, released when the response is finished or the
 * connection closes; a refusal answers 429 (Retry-After) or 503 as problem+json. */
export function middleware(g: Guard, options: MiddlewareOptions = {}): (req: Req, res: ServerResponse, next: Next) => Promise<void> {
  const key = options.key;
  if (typeof key === "string") checkKey(key);
  return async (req, res, next) => {
    const context = localContext(options.function ?? "", options.timeoutMs ?? 30_000);
    let lease;
    try {
      const k = typeof key === "function" ? (key(req) ?? undefined) : key;
      if (k !== undefined) {
        try {
          checkKey(k);
        } catch (err) {
          const detail = err instanceof UsageError ? err.message : String(err);
          writeResult(res, problemResponse("bad-request", detail, {}, { field: "key" }));
          return;
        }
      }
      lease = await g.acquire(options.function, {
        ttlMs: options.ttlMs,
        waitMs: boundedWait(options.waitMs ?? 0, context),
        context: { getRemainingTimeInMillis: context.getRemainingTimeInMillis },
        key: k,
      });
    } catch (err) {
      if (err instanceof Throttled || err instanceof GuardUnavailable) {
        writeResult(res, refusalResponse(err));
        return;
      }
      next(err);
      return;
    }
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      lease.release().catch((err: unknown) => {
        if (!(err instanceof GuardError)) throw err;
      });
    };
    res.once("finish", release);
    res.once("close", release);
    next();
  };
}
