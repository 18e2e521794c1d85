/**
 * One hop of an outbound request (openid-and-discovery.md §8.1–§8.6): the SSRF guard on the
 * resolved addresses, then the exchange over one of two transports.
 *
 * - `fetch` with pooled `Deno.HttpClient`s (lib/net/client_pool.ts): guarded requests go
 *   through the pinning proxy (lib/net/pin_proxy.ts), proxied ones through the upstream proxy.
 * - The built-in HTTP/1.1 client (lib/net/http1_pool.ts) for small POSTs — the delayed-event
 *   calls, sent once per participant every 0.8·T (delegation.md §4) — where `fetch` costs
 *   several times more CPU and memory per request (docs/performance.md). Guarded requests dial
 *   the checked address themselves, so pinning needs no proxy; TLS keeps the URL host as SNI,
 *   certificate name and `Host`.
 *
 * Both apply the same guard, try allowed addresses in order, and classify failures into the
 * same {@linkcode OutboundError} kinds.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { ClientPool, PooledClient } from "./client_pool.ts";
import type { RequestDeadline } from "./deadline.ts";
import { DnsError, type Resolver } from "./dns.ts";
import { type Http1Response, requestText } from "./http1.ts";
import { failedInResponse, type Http1Pool, type Http1Target } from "./http1_pool.ts";
import { readBody } from "./http_steps.ts";
import { formatIp, parseIp } from "./ip.ts";
import { classifyFailure, OutboundError, redactUrl } from "./outbound_error.ts";
import type { Pin } from "./pin_proxy.ts";
import type { OutboundPolicy } from "./ssrf.ts";

/** A response whose body is still to be read (or dropped when a redirect is followed). */
export interface Hop {
  status: number;
  headers: Headers;
  /** The whole body under the request's cap. */
  read(): Promise<Uint8Array>;
  /** Drops the body. */
  discard(): Promise<void>;
  /** Releases the transport (after `read` or `discard`). */
  done(): void;
}

/** What one hop sends. */
export interface HopRequest {
  url: URL;
  method: string;
  /** Validated fields, names in lower case. */
  headers: [string, string][];
  body: string | undefined;
  maxBodyBytes: number;
  /** Server name for the SSRF guard; undefined = operator-configured destination. */
  guard: string | undefined;
  /** Already-resolved address and port for the first hop (see `OutboundRequest.connectTo`). */
  connectTo: { address: string; port: number; host?: string } | undefined;
  /** Upstream proxy chosen for this URL (`fetch` transport only). */
  proxyUrl: string | undefined;
}

/** Shared state of the outbound client used by the hops. */
export interface HopContext {
  policy: OutboundPolicy;
  resolver: Resolver;
  log: Logger;
  pool: ClientPool;
  http1: Http1Pool;
}

/** Port of `url`, with the scheme's default. */
export function defaultPort(url: URL): number {
  return url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
}

/** The URL host without IPv6 brackets. */
export function bareHostname(url: URL): string {
  const h = url.hostname;
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

function classify(
  err: unknown,
  d: RequestDeadline,
  ctx: { url: URL; pin?: Pin; address?: string },
): OutboundError {
  return classifyFailure(err, {
    timedOut: d.timedOut,
    callerAborted: d.callerAborted,
    url: ctx.url,
    ...(ctx.pin ? { pin: ctx.pin } : {}),
    ...(ctx.address !== undefined ? { address: ctx.address } : {}),
  });
}

/** Addresses of the hop's host that pass the guard; denied ones are logged and skipped. */
async function guardedAddresses(
  ctx: HopContext,
  req: HopRequest & { guard: string },
  d: RequestDeadline,
): Promise<{ address: string; port: number }[]> {
  const { url, connectTo } = req;
  const host = bareHostname(url);
  const name = connectTo?.host ?? host;
  const port = connectTo?.port ?? defaultPort(url);
  const candidates = connectTo ? [connectTo.address] : await ctx.resolver.lookup(host, d.signal);
  const allowed: { address: string; port: number }[] = [];
  const denied: string[] = [];
  for (const text of candidates) {
    const ip = parseIp(text);
    if (!ip) continue;
    const verdict = ctx.policy.check({ serverName: req.guard, host: name, address: ip.value });
    if (verdict.allowed) allowed.push({ address: formatIp(ip.value), port });
    else {
      denied.push(`${text} (${verdict.reason})`);
      ctx.log.warn("destination not allowed", {
        server_name: req.guard,
        host: name,
        address: text,
        reason: verdict.reason,
      });
    }
  }
  if (allowed.length === 0) {
    throw new OutboundError(
      "blocked",
      `destination not allowed: ${name} -> ${denied.join(", ") || "no usable address"}`,
      { url: redactUrl(url), address: candidates[0] },
    );
  }
  return allowed;
}

async function guarded(
  ctx: HopContext,
  req: HopRequest & { guard: string },
  d: RequestDeadline,
): Promise<{ address: string; port: number }[]> {
  try {
    return await guardedAddresses(ctx, req, d);
  } catch (err) {
    throw classify(err, d, { url: req.url });
  }
}

async function fetchOn(
  ctx: HopContext,
  req: HopRequest,
  opts: { entry: PooledClient; d: RequestDeadline },
): Promise<Hop> {
  const { entry, d } = opts;
  ctx.pool.acquire(entry);
  let response: Response;
  try {
    response = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: d.signal,
      client: entry.client,
      redirect: "manual",
    });
  } catch (err) {
    ctx.pool.release(entry);
    throw err;
  }
  return {
    status: response.status,
    headers: response.headers,
    read: () => readBody(response, req.maxBodyBytes, req.url),
    discard: async () => await response.body?.cancel().catch(() => {}),
    done: () => ctx.pool.release(entry),
  };
}

/** Sends one hop with `fetch` (pinning proxy, upstream proxy or the plain client). */
export async function fetchHop(
  ctx: HopContext,
  req: HopRequest,
  d: RequestDeadline,
): Promise<Hop> {
  const { url, proxyUrl, guard } = req;
  if (guard === undefined) {
    const entry = proxyUrl ? ctx.pool.upstream(proxyUrl) : ctx.pool.plain();
    try {
      return await fetchOn(ctx, req, { entry, d });
    } catch (err) {
      throw classify(err, d, { url });
    }
  }
  if (proxyUrl) {
    // Best effort (lib/net/proxy_env.ts): the proxy resolves and connects itself.
    try {
      await guardedAddresses(ctx, { ...req, guard }, d);
    } catch (err) {
      if (!(err instanceof DnsError)) throw classify(err, d, { url });
    }
    try {
      return await fetchOn(ctx, req, { entry: ctx.pool.upstream(proxyUrl), d });
    } catch (err) {
      throw classify(err, d, { url });
    }
  }
  const targets = await guarded(ctx, { ...req, guard }, d);
  const scheme = url.protocol === "http:" ? "http:" : "https:";
  let last: OutboundError | undefined;
  for (const target of targets) {
    const entry = ctx.pool.pinned(scheme, target.address, target.port, bareHostname(url));
    try {
      return await fetchOn(ctx, req, { entry, d });
    } catch (err) {
      last = classify(err, d, { url, ...(entry.pin ? { pin: entry.pin } : {}) });
      if (d.ended) throw last;
      logAddressFailure(ctx, { req, address: target.address, error: last });
    }
  }
  throw last ?? new OutboundError("other", `no address for ${redactUrl(url)}`);
}

function logAddressFailure(
  ctx: HopContext,
  info: { req: HopRequest; address: string; error: OutboundError },
): void {
  ctx.log.debug("outbound address failed", {
    server_name: info.req.guard,
    url: redactUrl(info.req.url),
    address: info.address,
    error: info.error.message,
  });
}

/** A hop whose response was read completely by the built-in client. */
class CompletedHop implements Hop {
  readonly #res: Http1Response;

  constructor(res: Http1Response) {
    this.#res = res;
  }

  get status(): number {
    return this.#res.status;
  }

  /** Built on first use (only a redirect or a 429 needs it). */
  get headers(): Headers {
    return this.#res.headers;
  }

  read(): Promise<Uint8Array> {
    return Promise.resolve(this.#res.body);
  }

  discard(): Promise<void> {
    return Promise.resolve();
  }

  done(): void {}
}

/**
 * Sends one hop over the built-in HTTP/1.1 client: direct connections only (no upstream
 * proxy), guarded ones to the checked addresses in order.
 */
export async function http1Hop(
  ctx: HopContext,
  req: HopRequest,
  d: RequestDeadline,
): Promise<Hop> {
  const { url, guard } = req;
  const scheme = url.protocol === "http:" ? "http:" : "https:";
  const tlsName = bareHostname(url);
  const exchange = {
    text: requestText(req),
    method: req.method,
    url,
    maxBodyBytes: req.maxBodyBytes,
  };
  if (guard === undefined) {
    const target: Http1Target = {
      scheme,
      hostname: tlsName,
      port: defaultPort(url),
      tlsName,
      pinned: false,
    };
    try {
      return new CompletedHop(await ctx.http1.request(target, exchange, d));
    } catch (err) {
      throw classify(err, d, { url });
    }
  }
  const targets = await guarded(ctx, { ...req, guard }, d);
  let last: OutboundError | undefined;
  for (const { address, port } of targets) {
    const target: Http1Target = { scheme, hostname: address, port, tlsName, pinned: true };
    try {
      return new CompletedHop(await ctx.http1.request(target, exchange, d));
    } catch (err) {
      last = classify(err, d, { url, address });
      if (d.ended || failedInResponse(err)) throw last;
      logAddressFailure(ctx, { req, address, error: last });
    }
  }
  throw last ?? new OutboundError("other", `no address for ${redactUrl(url)}`);
}
