/**
 * Opening the connections of the outbound client (openid-and-discovery.md §8.2, §8.5, §8.6).
 *
 * Owns: dialing exactly the address the SSRF guard checked (no second resolution between check
 * and connect, so DNS rebinding cannot redirect a guarded request), the per-address connect
 * timeout, `CONNECT` tunnels through an upstream `http://` proxy, and TLS end to end with the
 * URL host as SNI and certificate name and the configured extra trust roots (`SSL_CERT_FILE`)
 * on top of the default store. Skip-verify (`LIVEKIT_INSECURE_SKIP_VERIFY_TLS`) is the
 * launcher's `--unsafely-ignore-certificate-errors`, which Deno applies to `Deno.startTls` too.
 *
 * Upstream proxies other than `http://` (`https://`, `socks5://`) are refused with a `connect`
 * failure that names the reason (docs/architecture.md "Outbound HTTP").
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { describeError } from "../log.ts";
import type { RequestDeadline } from "./deadline.ts";
import { OutboundError, redactUrl } from "./outbound_error.ts";

/** Opens a TCP connection (test seam; default `Deno.connect`). */
export type Connector = (opts: Deno.ConnectOptions & { signal: AbortSignal }) => Promise<Deno.Conn>;

/** An upstream proxy reached with `CONNECT`. */
export interface ProxyEndpoint {
  hostname: string;
  port: number;
  /** `Proxy-Authorization` value from the proxy URL's credentials. */
  authorization: string | undefined;
  /** The proxy URL without credentials (pool key, messages). */
  label: string;
}

/** Where a connection goes. */
export interface DialTarget {
  scheme: "http:" | "https:";
  /** What is dialed: the checked address (guarded) or the URL host name (unguarded). */
  hostname: string;
  port: number;
  /** SNI and certificate name for `https:` (the URL host, without brackets). */
  tlsName: string;
  /** A checked address (the `dial` test seam applies). */
  pinned: boolean;
  /** Tunnel through this proxy instead of connecting directly. */
  proxy?: ProxyEndpoint;
}

/** How connections are opened (shared by every connection of one outbound client). */
export interface DialOptions {
  clock: Clock;
  /** Extra trust roots (PEM), in addition to the default store. */
  caCerts: readonly string[];
  connect: Connector;
  /** Maps a checked (address, port) onto the socket actually dialed (test seam). */
  dial?: (host: string, port: number) => { hostname: string; port: number };
  /** Per-address connect timeout (§8.5). */
  connectTimeoutMs: number;
}

/** Largest proxy answer head to a `CONNECT`. */
const MAX_PROXY_HEAD = 8 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Writes all of `bytes`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) offset += await conn.write(bytes.subarray(offset));
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * Parses a proxy URL from the environment (`host:port` means `http://host:port`); a scheme
 * other than `http:` is an error whose message says why.
 */
export function parseProxy(raw: string): ProxyEndpoint | Error {
  let url: URL;
  try {
    url = new URL(raw.includes("://") ? raw : `http://${raw}`);
  } catch {
    return new Error("proxy URL is not a URL");
  }
  if (url.protocol !== "http:") {
    return new Error(
      `${url.protocol}// proxies are not supported (only http:// proxies, via CONNECT)`,
    );
  }
  const user = decodeURIComponent(url.username);
  const authorization = user !== "" || url.password !== ""
    ? `Basic ${btoa(`${user}:${decodeURIComponent(url.password)}`)}`
    : undefined;
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port !== "" ? Number(url.port) : 80;
  return { hostname, port, authorization, label: `http://${url.host}` };
}

/** `host:port` with brackets around IPv6 addresses. */
function authority(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Opens a connection to `target` (through its proxy when it has one) and starts TLS for
 * `https:`. Connect failures are `OutboundError`s (`connect` or `timeout`, naming the address);
 * a TLS failure surfaces on the first exchange.
 */
export async function dialTarget(
  opts: DialOptions,
  target: DialTarget,
  ctx: { url: URL; deadline: RequestDeadline },
): Promise<Deno.Conn> {
  const { url, deadline } = ctx;
  const proxy = target.proxy;
  const to = proxy
    ? { hostname: proxy.hostname, port: proxy.port }
    : target.pinned && opts.dial
    ? opts.dial(target.hostname, target.port)
    : { hostname: target.hostname, port: target.port };
  const where = redactUrl(url);
  const what = proxy
    ? `connect to ${authority(target.hostname, target.port)} via proxy ${proxy.label}`
    : `connect to ${authority(target.hostname, target.port)}`;
  const fail = (kind: "connect" | "timeout", why: string) =>
    new OutboundError(kind, `${where}: ${what} ${why}`, { url: where, address: target.hostname });
  const ac = new AbortController();
  const aborted = new Promise<never>((_, reject) => {
    ac.signal.addEventListener("abort", () => reject(new Error("connect abandoned")), {
      once: true,
    });
  });
  let timedOut = false;
  const timer = opts.clock.setTimer(opts.connectTimeoutMs, () => {
    timedOut = true;
    ac.abort();
  });
  deadline.onEnd(() => ac.abort());
  const attempt = opts.connect({ hostname: to.hostname, port: to.port, signal: ac.signal });
  let tcp: Deno.Conn | undefined;
  try {
    tcp = await Promise.race([attempt, aborted]);
    // Requests and TLS handshake messages are small writes: never hold them back (Nagle).
    if ("setNoDelay" in tcp && typeof tcp.setNoDelay === "function") tcp.setNoDelay(true);
    if (proxy) {
      const conn = tcp;
      deadline.onEnd(() => closeQuietly(conn));
      await Promise.race([tunnel(conn, proxy, target), aborted]);
    }
  } catch (err) {
    attempt.then((c) => closeQuietly(c), () => {});
    if (deadline.ended) throw err;
    if (timedOut) throw fail("timeout", "timed out");
    if (err instanceof OutboundError) throw err;
    throw fail("connect", `failed: ${describeError(err)}`);
  } finally {
    timer.cancel();
    deadline.onEnd(undefined);
  }
  if (target.scheme === "http:") return tcp;
  try {
    // TLS runs end to end over the TCP connection (or the tunnel); the handshake happens on
    // the first write, under the request's deadline.
    return await Deno.startTls(tcp as Deno.TcpConn, {
      hostname: target.tlsName,
      caCerts: [...opts.caCerts],
      alpnProtocols: ["http/1.1"],
    });
  } catch (err) {
    closeQuietly(tcp);
    throw err;
  }
}

/** Asks the proxy to open a tunnel to the target and reads its answer head. */
async function tunnel(conn: Deno.Conn, proxy: ProxyEndpoint, target: DialTarget): Promise<void> {
  const dest = authority(target.hostname, target.port);
  let head = `CONNECT ${dest} HTTP/1.1\r\nHost: ${dest}\r\n`;
  if (proxy.authorization) head += `Proxy-Authorization: ${proxy.authorization}\r\n`;
  await writeAll(conn, encoder.encode(`${head}\r\n`));
  // Read byte-wise up to the blank line: the tunnel's first bytes must stay in the socket.
  const buf = new Uint8Array(MAX_PROXY_HEAD);
  let n = 0;
  while (
    n < 4 || buf[n - 4] !== 13 || buf[n - 3] !== 10 || buf[n - 2] !== 13 || buf[n - 1] !== 10
  ) {
    if (n === buf.length) throw new Error(`proxy ${proxy.label} answer head too large`);
    const got = await conn.read(buf.subarray(n, n + 1));
    if (got === null) throw new Error(`proxy ${proxy.label} closed the connection`);
    n += got;
  }
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(decoder.decode(buf.subarray(0, n)));
  if (!status) throw new Error(`proxy ${proxy.label} sent no HTTP answer`);
  if (!status[1]!.startsWith("2")) {
    throw new Error(`proxy ${proxy.label} refused the tunnel with HTTP ${status[1]}`);
  }
}
