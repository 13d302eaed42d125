// Compiled (never run) by package.test.mjs: the published declarations type an ESM consumer.
import { Guard, Throttled, apiGateway, type Lease, type ThrottleScope } from "guard-concurrency";

const g: Guard = Guard.fromUrl("redis://127.0.0.1:1/0", { namespace: "n", timeoutMs: 50 });
export async function run(): Promise<number> {
  try {
    const lease: Lease = await g.acquire("fn", { ttlMs: 1000, waitMs: 0 });
    await lease.renew(2000);
    await lease.release();
    return lease.fence;
  } catch (e) {
    if (e instanceof Throttled) return e.retryAfter;
    throw e;
  }
}
export const handler = apiGateway(g, async (_event: { rawPath: string }, _ctx: { functionName: string }) => ({ statusCode: 200 }));

// The Lambda runtime's context as @types/aws-lambda declares it: an interface with more members.
interface Context {
  functionName: string;
  awsRequestId: string;
  memoryLimitInMB: string;
  getRemainingTimeInMillis(): number;
  done(error?: Error, result?: unknown): void;
}
export const typed = g.limit(async (event: { id: string }, context: Context) => `${event.id} ${context.awsRequestId}`);
export const viaAdapter = apiGateway(g, async (_e: unknown, context: Context) => ({ statusCode: 200, body: context.functionName }));

// Keys (issue 14): a per-tenant key from the event, typed by the handler's event; the scopes.
export const perTenant = g.limit(async (event: { tenant: string }) => event.tenant, {
  key: (event: { tenant: string }) => event.tenant,
});
export const perApiKey = apiGateway(g, async (_e: { headers: Record<string, string> }) => ({ statusCode: 200 }), {
  key: (e: { headers: Record<string, string> }) => e.headers["x-api-key"],
});
export async function keyed(): Promise<string> {
  try {
    await g.slot("fn", () => 1, { key: "tenant-a", waitMs: 500 });
    return "";
  } catch (e) {
    if (e instanceof Throttled) {
      const s: ThrottleScope = e.scope;
      return e.rate ? `rate ${s} ${e.retryAfter}` : s;
    }
    throw e;
  }
}
