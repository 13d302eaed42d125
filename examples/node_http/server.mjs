// The same handler on ECS (or any container): Express serves it with lambdaToExpress, so a
// request there takes its lease from the same namespace, under the same limits, as the Lambda.
//
//   GUARD_REDIS_URL=redis://... GUARD_NAMESPACE=prod PORT=8080 node server.mjs
import express from "express";
import { lambdaToExpress } from "guard-concurrency";
import { g, handler } from "./sdk_handler.mjs";

export const app = express();
app.all("/*", lambdaToExpress(handler, { functionName: process.env.GUARD_FUNCTION || "orders-fn", timeoutMs: 30_000 }));

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop())) {
  const server = app.listen(Number(process.env.PORT || 8080));
  process.on("SIGTERM", () => server.close(() => g.close()));
}
