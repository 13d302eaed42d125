/**
 * Redis clients (ioredis) from URLs: standalone, Sentinel and Cluster, the same URL forms as
 * the Python SDK's `guard/connect.py`, each command bounded by the SDK's deadline.
 *
 * Every client is made with `enableOfflineQueue: false`: a command issued while the
 * connection is down fails at once instead of waiting in a queue and running later (an
 * acquire that its caller already gave up on must never be granted afterwards). The store
 * waits for the connection itself, bounded by the connect timeout (`Store.ready`).
 */
import Redis, { Cluster, type RedisOptions } from "ioredis";
import { UsageError } from "./errors";

export type Client = Redis | Cluster;

export interface ConnectOptions {
  /** Bound of every command, ms. */
  timeoutMs: number;
  /** Bound of establishing a connection, ms. */
  connectTimeoutMs: number;
}

/** Reconnect at once, then every 20..500 ms: a restarted Redis is found within a call. */
function retryStrategy(times: number): number {
  return Math.min((times - 1) * 20, 500);
}

function common(o: ConnectOptions): RedisOptions {
  return {
    connectTimeout: o.connectTimeoutMs,
    commandTimeout: o.timeoutMs,
    enableOfflineQueue: false,
    enableReadyCheck: false, // one round trip less per connection (a LOADING reply is an error)
    disableClientInfo: true, // no CLIENT SETINFO (two round trips and a file read) before ready
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy,
  };
}

/**
 * `redis://`, `rediss://`, `unix:///path?db=N`; `redis+sentinel://[:password@]host:port
 * [,host:port...]/service_name[/db]` (the current primary, found through Sentinel);
 * `redis+cluster://[:password@]host:port[,host:port...]` (Redis Cluster; a namespace lives
 * in one slot).
 */
export function connect(url: string, o: ConnectOptions): Client {
  let client: Client;
  if (url.startsWith("redis+sentinel://")) {
    client = sentinelClient(url, o);
  } else if (url.startsWith("redis+cluster://")) {
    const { auth, hosts } = splitHosts(url, 6379);
    client = new Cluster(hosts, {
      enableOfflineQueue: false,
      enableReadyCheck: false,
      clusterRetryStrategy: retryStrategy,
      maxRedirections: 8,
      slotsRefreshTimeout: o.connectTimeoutMs + o.timeoutMs,
      redisOptions: { ...common(o), username: auth.user, password: auth.password },
    });
  } else if (url.startsWith("unix://")) {
    const u = new URL(url);
    client = new Redis({
      ...common(o),
      path: decodeURIComponent(u.pathname),
      db: Number(u.searchParams.get("db") ?? 0),
      password: u.searchParams.get("password") ?? undefined,
    });
  } else if (url.startsWith("redis://") || url.startsWith("rediss://")) {
    client = new Redis(url, common(o));
  } else {
    throw new UsageError(
      `not a Redis URL (redis://, rediss://, unix://, redis+sentinel://, redis+cluster://): ${JSON.stringify(url)}`,
      "url",
    );
  }
  client.on("error", () => {}); // reported per call as GuardUnavailable, not as events
  return client;
}

interface Split {
  auth: { user?: string; password?: string };
  hosts: { host: string; port: number }[];
  path: string;
}

function splitHosts(url: string, defaultPort: number): Split {
  let rest = url.slice(url.indexOf("://") + 3);
  const at = rest.lastIndexOf("@");
  const authText = at >= 0 ? rest.slice(0, at) : "";
  rest = at >= 0 ? rest.slice(at + 1) : rest;
  const slash = rest.indexOf("/");
  const hostText = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash + 1) : "";
  const colon = authText.indexOf(":");
  const user = colon >= 0 ? authText.slice(0, colon) : authText;
  const password = colon >= 0 ? authText.slice(colon + 1) : "";
  const hosts = hostText
    .split(",")
    .filter((h) => h)
    .map((h) => {
      const i = h.lastIndexOf(":");
      const host = i >= 0 ? h.slice(0, i) : h;
      const port = i >= 0 ? Number(h.slice(i + 1)) : defaultPort;
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw new UsageError(`bad port in Redis URL: ${JSON.stringify(url)}`, "url");
      }
      return { host: host || "localhost", port };
    });
  if (hosts.length === 0) throw new UsageError(`no host in Redis URL: ${JSON.stringify(url)}`, "url");
  return {
    auth: {
      user: user ? decodeURIComponent(user) : undefined,
      password: password ? decodeURIComponent(password) : undefined,
    },
    hosts,
    path,
  };
}

/** `redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]`. The password
 * is the primary's; sentinels are asked with the same timeouts. */
function sentinelClient(url: string, o: ConnectOptions): Redis {
  const { auth, hosts, path } = splitHosts(url, 26379);
  const [service, db] = path.split("/").filter((p) => p !== "");
  if (!service) {
    throw new UsageError(
      `sentinel URL must be redis+sentinel://host:port[,host:port]/service[/db]: ${JSON.stringify(url)}`,
      "url",
    );
  }
  return new Redis({
    ...common(o),
    sentinels: hosts,
    name: service,
    db: Number(db ?? 0),
    username: auth.user,
    password: auth.password,
    sentinelMaxConnections: 3,
  });
}
