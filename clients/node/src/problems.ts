/**
 * Problem types (RFC 9457): the table of `type` URI, title and status of every problem document
 * guard produces — the same as `guard/problems.py` (a test compares the two). A client switches
 * on `type` (or its slug), never on `title` or `detail`.
 */
export const PROBLEM_PREFIX = "urn:guard:problem:";

export interface ProblemType {
  slug: string;
  status: number;
  title: string;
}

export const PROBLEM_TYPES: Record<string, ProblemType> = Object.fromEntries(
  (
    [
      ["bad-request", 400, "Bad request"],
      ["unauthorized", 401, "Unauthorized"],
      ["forbidden", 403, "Forbidden"],
      ["not-found", 404, "Not found"],
      ["lease-not-held", 404, "Lease not held"],
      ["namespace-not-found", 404, "Namespace not found"],
      ["method-not-allowed", 405, "Method not allowed"],
      ["conflict", 409, "Conflict"],
      ["request-timeout", 408, "Request timeout"],
      ["payload-too-large", 413, "Payload too large"],
      ["uri-too-long", 414, "URI too long"],
      ["header-fields-too-large", 431, "Header fields too large"],
      ["throttled", 429, "Throttled"],
      ["internal", 500, "Internal error"],
      ["store-reset", 503, "Store reset"],
      ["store-unavailable", 503, "Store unavailable"],
    ] as const
  ).map(([slug, status, title]) => [slug, { slug, status, title }]),
);

export function problemUri(slug: string): string {
  return PROBLEM_PREFIX + slug;
}

/** The problem body for `slug`; extension members that are null or undefined are left out. */
export function problemDocument(slug: string, detail: string, extensions: Record<string, unknown> = {}): Record<string, unknown> {
  const t = PROBLEM_TYPES[slug];
  const body: Record<string, unknown> = { type: problemUri(slug), title: t.title, status: t.status, detail };
  for (const [k, v] of Object.entries(extensions)) if (v !== null && v !== undefined) body[k] = v;
  return body;
}
