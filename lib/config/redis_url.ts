/**
 * `LIVEKIT_REDIS_URL` forms (delegation.md §10.3): `redis://[user:password@]host[:port][/db]`,
 * `rediss://…` (TLS) and `unix:///path/to/socket[?db=N]`; default port 6379, DB 0; unknown
 * query parameters are ignored with a WARN. The result never carries the raw URL, so the
 * password cannot reach a log line by accident.
 *
 * @module
 */
import type { Secret } from "../ids.ts";
import type { RedisSentinelSettings } from "./replicas.ts";

/** Where and how to connect. */
export interface RedisTarget {
  transport: "tcp" | "tls" | "unix";
  /** Host name or address (tcp/tls), without IPv6 brackets. */
  host: string;
  port: number;
  /** Socket path (unix). */
  path: string;
  username: string | undefined;
  password: string | undefined;
  database: number;
  /** Query parameters that were ignored (for the WARN). */
  ignoredParams: string[];
  /** `host:port` or the socket path, safe to log. */
  display: string;
}

const DEFAULT_PORT = 6379;

/**
 * Parses a Redis URL.
 *
 * @throws {TypeError} with the cause text of the startup error (configuration.md).
 */
export function parseRedisUrl(raw: string): RedisTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError("not an absolute URL");
  }
  const ignoredParams: string[] = [];
  let database = 0;
  for (const [name, value] of url.searchParams) {
    if (url.protocol === "unix:" && name === "db") database = parseDb(value);
    else ignoredParams.push(name);
  }
  const username = url.username === "" ? undefined : decodeURIComponent(url.username);
  const password = url.password === "" ? undefined : decodeURIComponent(url.password);
  if (url.protocol === "unix:") {
    const path = decodeURIComponent(url.pathname);
    if (path === "" || path === "/") throw new TypeError("missing socket path");
    return {
      transport: "unix",
      host: "",
      port: 0,
      path,
      username,
      password,
      database,
      ignoredParams,
      display: path,
    };
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new TypeError(
      `unsupported scheme "${url.protocol.replace(/:$/, "")}", expected redis, rediss or unix`,
    );
  }
  if (url.hostname === "") throw new TypeError("missing host");
  const dbText = url.pathname.replace(/^\//, "");
  if (dbText !== "") database = parseDb(dbText);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? DEFAULT_PORT : Number(url.port);
  return {
    transport: url.protocol === "rediss:" ? "tls" : "tcp",
    host,
    port,
    path: "",
    username,
    password,
    database,
    ignoredParams,
    display: `${url.hostname}:${port}`,
  };
}

function parseDb(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) > 2 ** 31 - 1) {
    throw new TypeError(`invalid database number "${text}"`);
  }
  return Number(text);
}

/** Where Redis is: a server, or a master behind Sentinels. */
export interface RedisEndpoint {
  /** Credentials, database and transport (host and port unused with Sentinel). */
  target: RedisTarget;
  sentinel?: RedisSentinelSettings;
  /** Safe to log: `host:port`, the socket path, or `sentinel <master> via host:port,…`. */
  display: string;
}

/**
 * The endpoint of the configuration, or undefined without Redis. `LIVEKIT_REDIS_PASSWORD`
 * replaces the URL's password; with Sentinel the URL (if any) only gives credentials, database
 * and TLS.
 *
 * @throws {TypeError} for a URL the configuration loader should already have refused.
 */
export function redisEndpoint(config: {
  redisUrl: Secret<"redis_url"> | undefined;
  redisPassword?: Secret<"redis_password"> | undefined;
  redisSentinel?: RedisSentinelSettings | undefined;
}): RedisEndpoint | undefined {
  if (!config.redisUrl && !config.redisSentinel) return undefined;
  const parsed = config.redisUrl ? parseRedisUrl(config.redisUrl.reveal()) : {
    transport: "tcp" as const,
    host: "",
    port: 0,
    path: "",
    username: undefined,
    password: undefined,
    database: 0,
    ignoredParams: [],
    display: "",
  };
  const target: RedisTarget = config.redisPassword
    ? { ...parsed, password: config.redisPassword.reveal() }
    : parsed;
  const sentinel = config.redisSentinel;
  const display = sentinel
    ? `sentinel ${sentinel.master} via ${
      sentinel.nodes.map((n) => `${n.host.includes(":") ? `[${n.host}]` : n.host}:${n.port}`)
        .join(",")
    }`
    : target.display;
  return { target, sentinel, display };
}
