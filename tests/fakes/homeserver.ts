/**
 * A scriptable fake Matrix homeserver for tests (openid-and-discovery.md §4, §6, §9).
 *
 * `startFakeHomeserver(opts)` serves, on 127.0.0.1 with an OS-chosen port:
 * - `GET /_matrix/federation/v1/openid/userinfo?access_token=…` from a token → `sub` map
 *   (`401 M_UNKNOWN_TOKEN` for unknown tokens), or from a scripted route;
 * - `/.well-known/matrix/server` and `/.well-known/matrix/client` (scripted; default 404);
 * - anything `extraRoutes` answers (e.g. the MSC4140 delayed-event endpoints); everything else
 *   is `404 M_UNRECOGNIZED`.
 *
 * With `tls: true` it serves HTTPS with the default leaf of the test CA (tests/fakes/tls.ts:
 * valid for `localhost`, `127.0.0.1`, `hs.test`, …); pass `caCerts: [hs.ca.caCertPem]` to
 * clients. Requests are counted per path and recorded (method, path, `Host`/authority; the
 * query string is not recorded). TCP connections are counted by a forwarding front listener
 * (the port you get), so connection reuse can be asserted; with TLS one TCP connection is one
 * TLS session. `close()` ends hanging responses, the server and every connection.
 *
 * @module
 */
import { closeQuietly, splice } from "../support/pipe.ts";
import { createTestCa, type TestCa } from "./tls.ts";

/** A canned answer. `body` strings are sent as is, other values as JSON. */
export interface ScriptedResponse {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Wait this long (real time) before answering. */
  delayMs?: number;
  /** Never answer (until the fake is closed). */
  hang?: boolean;
}

/** A scripted response or a handler. */
export type Route = ScriptedResponse | ((req: Request) => Response | Promise<Response>);

/** Options of {@linkcode startFakeHomeserver}. */
export interface FakeHomeserverOptions {
  /** `true` = the test CA's default leaf; or an explicit certificate. */
  tls?: boolean | { cert: string; key: string };
  /** Access token → `sub`. */
  users?: Record<string, string>;
  /** Replaces the token map for userinfo. */
  userinfo?: Route;
  wellKnownServer?: Route;
  wellKnownClient?: Route;
  /** Consulted before the built-in routes; return undefined to fall through. */
  extraRoutes?: (req: Request) => Response | undefined | Promise<Response | undefined>;
}

/** One recorded request. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** Host header / `:authority` as received. */
  authority: string;
  headers: Headers;
}

/** Live counters. */
export interface FakeCounts {
  /** TCP connections accepted (TLS sessions when `tls`). */
  connections: number;
  requests: number;
  /** Requests per path. */
  paths: Record<string, number>;
}

/** A running fake homeserver. */
export interface FakeHomeserver {
  /** Base URL, e.g. `https://127.0.0.1:40123` (same as `origin`). */
  url: string;
  origin: string;
  port: number;
  /** The CA whose leaf is served (when `tls`). */
  ca: TestCa | undefined;
  counts: FakeCounts;
  requests: RecordedRequest[];
  /** Requests seen for `path`. */
  count(path: string): number;
  setUser(token: string, sub: string): void;
  setUserinfo(route: Route | undefined): void;
  setWellKnownServer(route: Route | undefined): void;
  setWellKnownClient(route: Route | undefined): void;
  close(): Promise<void>;
}

/** Path of the userinfo endpoint. */
export const USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo";

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Starts the fake; always `close()` it at the end of the test. */
export async function startFakeHomeserver(
  opts: FakeHomeserverOptions = {},
): Promise<FakeHomeserver> {
  const ca = opts.tls ? await createTestCa() : undefined;
  const cert = typeof opts.tls === "object"
    ? opts.tls
    : ca
    ? { cert: ca.leaf.certPem, key: ca.leaf.keyPem }
    : undefined;
  const users = new Map(Object.entries(opts.users ?? {}));
  let userinfo = opts.userinfo;
  let wellKnownServer = opts.wellKnownServer;
  let wellKnownClient = opts.wellKnownClient;
  const closing = new AbortController();
  const counts: FakeCounts = { connections: 0, requests: 0, paths: {} };
  const requests: RecordedRequest[] = [];

  async function play(route: Route, req: Request): Promise<Response> {
    if (typeof route === "function") return await route(req);
    if (route.hang) {
      await new Promise<void>((resolve) => {
        if (closing.signal.aborted) resolve();
        closing.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      return new Response("closing", { status: 503 });
    }
    if (route.delayMs) {
      await new Promise<void>((resolve) => {
        const id = setTimeout(resolve, route.delayMs);
        closing.signal.addEventListener("abort", () => {
          clearTimeout(id);
          resolve();
        }, { once: true });
      });
    }
    const status = route.status ?? 200;
    const body = route.body === undefined
      ? null
      : typeof route.body === "string"
      ? route.body
      : JSON.stringify(route.body);
    const headers = new Headers(route.headers);
    if (body !== null && typeof route.body !== "string" && !headers.has("content-type")) {
      headers.set("content-type", "application/json");
    }
    return new Response(body, { status, headers });
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    counts.requests++;
    counts.paths[url.pathname] = (counts.paths[url.pathname] ?? 0) + 1;
    requests.push({
      method: req.method,
      path: url.pathname,
      authority: req.headers.get("host") ?? url.host,
      headers: new Headers(req.headers),
    });
    const extra = opts.extraRoutes ? await opts.extraRoutes(req) : undefined;
    if (extra) return extra;
    if (url.pathname === USERINFO_PATH) {
      if (userinfo) return await play(userinfo, req);
      const sub = users.get(url.searchParams.get("access_token") ?? "");
      if (sub !== undefined) return json(200, { sub });
      return json(401, { errcode: "M_UNKNOWN_TOKEN", error: "Access token unknown or expired" });
    }
    if (url.pathname === "/.well-known/matrix/server" && wellKnownServer) {
      return await play(wellKnownServer, req);
    }
    if (url.pathname === "/.well-known/matrix/client" && wellKnownClient) {
      return await play(wellKnownClient, req);
    }
    return json(404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
  }

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: closing.signal,
    onListen() {},
    ...(cert ? { cert: cert.cert, key: cert.key } : {}),
  }, handle);

  // Front listener: counts TCP connections and forwards them to the server.
  const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tunnels = new Set<Promise<void>>();
  const accepting = (async () => {
    try {
      for await (const conn of front) {
        counts.connections++;
        conns.add(conn);
        const tunnel = (async () => {
          let inner: Deno.Conn | undefined;
          try {
            inner = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
            conns.add(inner);
            await splice(conn, inner);
          } catch {
            closeQuietly(conn);
          } finally {
            conns.delete(conn);
            if (inner) conns.delete(inner);
          }
        })();
        tunnels.add(tunnel);
        tunnel.finally(() => tunnels.delete(tunnel));
      }
    } catch {
      // Listener closed.
    }
  })();

  const port = front.addr.port;
  const origin = `${cert ? "https" : "http"}://127.0.0.1:${port}`;
  let closed = false;
  return {
    url: origin,
    origin,
    port,
    ca,
    counts,
    requests,
    count: (path) => counts.paths[path] ?? 0,
    setUser: (token, sub) => void users.set(token, sub),
    setUserinfo: (route) => void (userinfo = route),
    setWellKnownServer: (route) => void (wellKnownServer = route),
    setWellKnownClient: (route) => void (wellKnownClient = route),
    async close() {
      if (closed) return;
      closed = true;
      closing.abort();
      front.close();
      for (const c of conns) closeQuietly(c);
      await accepting;
      await Promise.allSettled([...tunnels]);
      await server.finished;
    },
  };
}
