/**
 * guard-concurrency: the Node.js SDK of guard. One lease per invocation, decided in Redis by
 * the same Lua scripts as the Python SDK, counted against the same limits.
 */
export { Guard, functionName, remainingMs } from "./guard";
export type { AcquireOptions, FromUrlOptions, GuardOptions, KeyArg, LambdaContext, LimitOptions, OnUnavailable } from "./guard";
export { Lease } from "./lease";
export { Releaser } from "./releaser";
export {
  ConflictError,
  GuardError,
  GuardUnavailable,
  NotFound,
  ProtocolMismatch,
  StoreError,
  StoreReset,
  Throttled,
  UsageError,
  isRateScope,
} from "./errors";
export type { ThrottleScope } from "./errors";
export type { Backend, Grant, Refusal, Renewal } from "./backend";
export { RedisStore } from "./store";
export { HttpBackend } from "./http";
export {
  BACKSTOP_TTL_MS,
  DEFAULT_LEASE_TTL_MS,
  MAX_LEASE_TTL_MS,
  PROTOCOL_VERSION,
  checkKey,
  leaseKeys,
  parseLeaseId,
  releaseChannel,
} from "./keys";
export { LUA_DIR, leaseScripts } from "./scripts";
export {
  DEADLINE_MARGIN_MS,
  PROBLEM_THROTTLED,
  PROBLEM_UNAVAILABLE,
  apiGateway,
  boundedWait,
  problemResponse,
  refusalResponse,
  retryAfterHeader,
  sqs,
} from "./aws";
export type { ApiGatewayOptions, HttpResponse, SqsEvent, SqsOptions } from "./aws";
export { PROBLEM_PREFIX, PROBLEM_TYPES, problemDocument, problemUri } from "./problems";
export type { ProblemType } from "./problems";
export { delayMessages, parseQueueArn, queueUrl } from "./sqs";
export type { SqsClientLike, SqsRecord } from "./sqs";
export { buildEvent, lambdaToExpress, localContext, middleware, writeResult } from "./express";
export type { LambdaToExpressOptions, MiddlewareOptions } from "./express";
