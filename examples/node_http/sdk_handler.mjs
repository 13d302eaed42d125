// A Node.js Lambda handler guarded by the Node SDK (guard-concurrency): one round trip to
// Redis per admission, the same scripts and the same limits as the Python functions.
//
// Environment (the same variables as the Python SDK): GUARD_REDIS_URL (redis://, rediss://,
// redis+sentinel://, redis+cluster://), GUARD_NAMESPACE, GUARD_ON_UNAVAILABLE, GUARD_TIMEOUT
// (seconds), GUARD_DISABLED. The guarded name is AWS_LAMBDA_FUNCTION_NAME (or the context's).
//
// Made once per container (outside the handler), so warm invocations reuse the connection.
import { Guard, apiGateway } from "guard-concurrency";

export const g = Guard.fromEnv();

// A refusal never reaches this code: apiGateway answers 429 + Retry-After (problem+json), or
// 503 for a function that fails closed while Redis is unreachable.
export const handler = apiGateway(g, async (event, context) => ({
  statusCode: 200,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ message: "hello from node", path: event.rawPath ?? event.path, fn: context.functionName }),
}));
