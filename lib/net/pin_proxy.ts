/**
 * The in-process loopback proxy that pins outbound connections to checked addresses
 * (openid-and-discovery.md §8.2; deno-stack.md §3a).
 *
 * Deno's `fetch` resolves host names itself, which would let a DNS answer change between the
 * SSRF check and the connect (rebinding). Instead, every guarded request goes through a
 * `Deno.HttpClient` whose proxy is this listener, authenticated with a pin id + nonce. The pin
 * maps to the (address, port) that passed the guard; the proxy dials exactly that and refuses
 * everything else (unknown pin, wrong nonce, other host). TLS stays end to end: the client sends
 * `CONNECT host:port`, then speaks TLS with SNI, certificate name and `Host` of the URL host.
 * Plain `http` URLs arrive in absolute form; they are rewritten to origin form and sent with
 * `Connection: close` (one request per tunnel).
 *
 * The listener binds {@linkcode PIN_PROXY_HOSTNAME}, a dedicated loopback address the launcher
 * can exempt from `--deny-net`, and falls back to `127.0.0.1` where that address cannot be bound.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import { closeQuietly, splice, writeAll } from "./pipe.ts";

/** Loopback address the pinning proxy listens on (launcher exempts exactly it). */
export const PIN_PROXY_HOSTNAME = "127.84.48.1";

/** Where a pin's connections go. */
export interface PinTarget {
  /** The checked IP address (IPv6 without brackets). */
  address: string;
  port: number;
  /** The URL host the client asks for (TLS name); anything else is refused. */
  host: string;
}

/** Why the proxy could not open a pinned connection. */
export interface PinFailure {
  kind: "connect" | "timeout";
  message: string;
}

/** A registered pin: credentials for the client's proxy settings plus the last dial failure. */
export interface Pin {
  readonly id: string;
  readonly basicAuth: { username: string; password: string };
  readonly target: PinTarget;
  /** Set by the proxy when dialing the target failed (for error classification). */
  lastFailure: PinFailure | undefined;
}

/** Opens a TCP connection (test seam). */
export type Connector = (opts: Deno.ConnectOptions & { signal: AbortSignal }) => Promise<Deno.Conn>;

/** Options of {@linkcode startPinProxy}. */
export interface PinProxyOptions {
  clock: Clock;
  log: Logger;
  /** Test seam: maps the checked (address, port) onto the socket actually dialed. */
  dial?: (host: string, port: number) => { hostname: string; port: number };
  /** Test seam: replaces `Deno.connect`. */
  connect?: Connector;
  /** Per-address connect timeout (openid-and-discovery.md §8.5), default 5 s. */
  connectTimeoutMs?: number;
  /** Time a client has to send its request head, default 10 s. */
  headTimeoutMs?: number;
  /** Listen address, default {@linkcode PIN_PROXY_HOSTNAME}. */
  hostname?: string;
}

/** The running proxy. */
export interface PinProxy {
  /** `http://address:port` for `Deno.createHttpClient({ proxy: { url } })`. */
  readonly url: string;
  /** Registers a pin; the caller releases it when the client using it is closed. */
  register(target: PinTarget): Pin;
  release(pin: Pin): void;
  /** Stops listening and closes every tunnel. */
  close(): Promise<void>;
}

const MAX_HEAD_BYTES = 16 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Head {
  method: string;
  target: string;
  version: string;
  headers: [string, string][];
  rest: Uint8Array;
}

function randomToken(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

function indexOfHeadEnd(buf: Uint8Array, length: number): number {
  for (let i = 3; i < length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
  }
  return -1;
}

async function readHead(conn: Deno.Conn): Promise<Head | undefined> {
  const buf = new Uint8Array(MAX_HEAD_BYTES);
  let length = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(length));
    if (n === null) return undefined;
    length += n;
    const end = indexOfHeadEnd(buf, length);
    if (end >= 0) {
      const lines = decoder.decode(buf.subarray(0, end)).split("\r\n");
      const [method = "", target = "", version = ""] = (lines[0] ?? "").split(" ");
      const headers: [string, string][] = [];
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
      }
      return { method, target, version, headers, rest: buf.slice(end, length) };
    }
    if (length >= buf.length) return undefined;
  }
}

function header(head: Head, name: string): string | undefined {
  const lower = name.toLowerCase();
  return head.headers.find(([k]) => k.toLowerCase() === lower)?.[1];
}

function bareHost(authority: string): string {
  let host = authority;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    host = end < 0 ? host : host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0 && host.indexOf(":") === colon) host = host.slice(0, colon);
  }
  return host.toLowerCase();
}

function normaliseHost(host: string): string {
  return (host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host).toLowerCase();
}

function rewriteAbsolute(head: Head): Uint8Array | undefined {
  let url: URL;
  try {
    url = new URL(head.target);
  } catch {
    return undefined;
  }
  const skip = new Set(["proxy-authorization", "proxy-connection", "connection", "keep-alive"]);
  const lines = [`${head.method} ${url.pathname}${url.search} ${head.version}`];
  for (const [k, v] of head.headers) if (!skip.has(k.toLowerCase())) lines.push(`${k}: ${v}`);
  lines.push("Connection: close", "", "");
  return encoder.encode(lines.join("\r\n"));
}

/** Starts the pinning proxy (synchronously: `Deno.listen` binds at once). */
export function startPinProxy(opts: PinProxyOptions): PinProxy {
  const { clock, log } = opts;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
  const headTimeoutMs = opts.headTimeoutMs ?? 10_000;
  const connector: Connector = opts.connect ?? ((o) => Deno.connect(o));
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: opts.hostname ?? PIN_PROXY_HOSTNAME, port: 0 });
  } catch (err) {
    log.debug("pinning proxy falls back to 127.0.0.1", { error: describeError(err) });
    listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  }
  const addr = listener.addr;
  const url = `http://${addr.hostname}:${addr.port}`;
  const pins = new Map<string, Pin>();
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let closed = false;

  async function reply(conn: Deno.Conn, status: string): Promise<void> {
    const text = `HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
    await writeAll(conn, encoder.encode(text)).catch(() => {});
  }

  function authenticate(head: Head): Pin | undefined {
    const auth = header(head, "proxy-authorization");
    const m = auth ? /^Basic\s+(\S+)$/i.exec(auth) : null;
    if (!m?.[1]) return undefined;
    let decoded: string;
    try {
      decoded = atob(m[1]);
    } catch {
      return undefined;
    }
    const colon = decoded.indexOf(":");
    const pin = pins.get(decoded.slice(0, colon));
    return pin && pin.basicAuth.password === decoded.slice(colon + 1) ? pin : undefined;
  }

  async function dialPin(pin: Pin): Promise<Deno.Conn | undefined> {
    const target = opts.dial
      ? opts.dial(pin.target.address, pin.target.port)
      : { hostname: pin.target.address, port: pin.target.port };
    const ac = new AbortController();
    const timer = clock.setTimer(connectTimeoutMs, () => ac.abort());
    const attempt = connector({ hostname: target.hostname, port: target.port, signal: ac.signal });
    const aborted = new Promise<never>((_, reject) => {
      ac.signal.addEventListener("abort", () => reject(new Error("connect timed out")), {
        once: true,
      });
    });
    try {
      return await Promise.race([attempt, aborted]);
    } catch (err) {
      attempt.then(closeQuietly, () => {});
      pin.lastFailure = {
        kind: ac.signal.aborted ? "timeout" : "connect",
        message: ac.signal.aborted
          ? `connect to ${pin.target.address}:${pin.target.port} timed out`
          : `connect to ${pin.target.address}:${pin.target.port} failed: ${describeError(err)}`,
      };
      return undefined;
    } finally {
      timer.cancel();
    }
  }

  async function handle(conn: Deno.Conn): Promise<void> {
    const headTimer = clock.setTimer(headTimeoutMs, () => closeQuietly(conn));
    let head: Head | undefined;
    try {
      head = await readHead(conn);
    } catch {
      head = undefined;
    } finally {
      headTimer.cancel();
    }
    if (!head) return closeQuietly(conn);
    const pin = authenticate(head);
    if (!pin) {
      await reply(conn, "407 Proxy Authentication Required");
      return closeQuietly(conn);
    }
    const isConnect = head.method === "CONNECT";
    let requested: string;
    try {
      requested = isConnect ? bareHost(head.target) : normaliseHost(new URL(head.target).hostname);
    } catch {
      requested = "";
    }
    const firstBytes = isConnect ? head.rest : rewriteAbsolute(head);
    if (requested !== normaliseHost(pin.target.host) || !firstBytes) {
      await reply(conn, "403 Forbidden");
      return closeQuietly(conn);
    }
    const upstream = await dialPin(pin);
    if (!upstream) {
      await reply(
        conn,
        pin.lastFailure?.kind === "timeout" ? "504 Gateway Timeout" : "502 Bad Gateway",
      );
      return closeQuietly(conn);
    }
    if (closed) {
      closeQuietly(upstream);
      return closeQuietly(conn);
    }
    pin.lastFailure = undefined;
    conns.add(upstream);
    try {
      if (isConnect) {
        await writeAll(conn, encoder.encode("HTTP/1.1 200 Connection Established\r\n\r\n"));
      }
      if (head.rest.length > 0 || !isConnect) {
        await writeAll(upstream, isConnect ? head.rest : concat(firstBytes, head.rest));
      }
    } catch {
      closeQuietly(upstream);
      conns.delete(upstream);
      return closeQuietly(conn);
    }
    await splice(conn, upstream);
    conns.delete(upstream);
  }

  const acceptLoop = (async () => {
    try {
      for await (const conn of listener) {
        if (closed) {
          closeQuietly(conn);
          continue;
        }
        conns.add(conn);
        const task = handle(conn)
          .catch((err) => log.debug("pinning proxy tunnel failed", { error: describeError(err) }))
          .finally(() => {
            conns.delete(conn);
            tasks.delete(task);
          });
        tasks.add(task);
      }
    } catch {
      // Listener closed.
    }
  })();

  return {
    url,
    register(target) {
      const id = randomToken(12);
      const pin: Pin = {
        id,
        basicAuth: { username: id, password: randomToken(16) },
        target: { ...target },
        lastFailure: undefined,
      };
      pins.set(id, pin);
      return pin;
    },
    release(pin) {
      pins.delete(pin.id);
    },
    async close() {
      if (closed) return;
      closed = true;
      pins.clear();
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      for (const conn of conns) closeQuietly(conn);
      await acceptLoop;
      await Promise.allSettled([...tasks]);
    },
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
