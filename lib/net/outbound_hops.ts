/**
 * One hop of an outbound request (openid-and-discovery.md §8.1–§8.6): the SSRF guard on the
 * resolved addresses, then one exchange on the built-in HTTP/1.1 client (lib/net/http1_pool.ts).
 *
 * Guarded requests dial the checked addresses themselves, in order, so no second resolution
 * happens between check and connect; TLS keeps the URL host as SNI, certificate name and
 * `Host`. Requests with an upstream proxy (lib/net/proxy_env.ts) tunnel with `CONNECT`
 * through it to the host name: the guard still runs first on a local resolution (best effort:
 * a name the local resolver cannot resolve is left to the proxy, which must enforce its own
 * policy).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { RequestDeadline } from "./deadline.ts";
import { type ProxyEndpoint } from "./dial.ts";
import { DnsError, type Resolver } from "./dns.ts";
import { type Http1Response, requestText } from "./http1.ts";
import { failedInResponse, type Http1Pool, type Http1Target } from "./http1_pool.ts";
import { formatIp, parseIp } from "./ip.ts";
import { classifyFailure, OutboundError, redactUrl } from "./outbound_error.ts";
import type { OutboundPolicy } from "./ssrf.ts";

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
  /** Upstream proxy chosen for this URL, or why it cannot be used. */
  proxy: ProxyEndpoint | Error | undefined;
}

/** Shared state of the outbound client used by the hops. */
export interface HopContext {
  policy: OutboundPolicy;
  resolver: Resolver;
  log: Logger;
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

function classify(err: unknown, d: RequestDeadline, url: URL, address?: string): OutboundError {
  return classifyFailure(err, {
    timedOut: d.timedOut,
    callerAborted: d.callerAborted,
    url,
    ...(address !== undefined ? { address } : {}),
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

/**
 * A hop's targets: the checked addresses, or the host name when unguarded or through a proxy.
 */
async function targets(
  ctx: HopContext,
  req: HopRequest,
  d: RequestDeadline,
): Promise<Http1Target[]> {
  const { url, guard, connectTo } = req;
  const scheme = url.protocol === "http:" ? "http:" : "https:";
  const tlsName = bareHostname(url);
  const proxy = req.proxy;
  const via = guard !== undefined ? connectTo : undefined;
  if (proxy instanceof Error) {
    ctx.log.warn("outbound proxy not usable", { url: redactUrl(url), reason: proxy.message });
    throw new OutboundError("connect", `${redactUrl(url)}: ${proxy.message}`, {
      url: redactUrl(url),
    });
  }
  const byName: Http1Target = {
    scheme,
    hostname: via?.host ?? tlsName,
    port: via?.port ?? defaultPort(url),
    tlsName,
    pinned: false,
    ...(proxy ? { proxy } : {}),
  };
  if (guard === undefined) return [byName];
  try {
    const checked = await guardedAddresses(ctx, { ...req, guard }, d);
    if (proxy) return [byName];
    return checked.map(({ address, port }) => ({
      scheme,
      hostname: address,
      port,
      tlsName,
      pinned: true,
    }));
  } catch (err) {
    if (proxy && err instanceof DnsError) return [byName];
    throw classify(err, d, url);
  }
}

/**
 * Sends one hop; tries the targets in order until one answers (a failure after the response
 * started is final).
 */
export async function sendHop(
  ctx: HopContext,
  req: HopRequest,
  d: RequestDeadline,
): Promise<Http1Response> {
  const { url } = req;
  const exchange = {
    text: requestText(req),
    method: req.method,
    url,
    maxBodyBytes: req.maxBodyBytes,
  };
  let last: OutboundError | undefined;
  for (const target of await targets(ctx, req, d)) {
    try {
      return await ctx.http1.request(target, exchange, d);
    } catch (err) {
      const address = target.pinned ? target.hostname : undefined;
      last = classify(err, d, url, address);
      if (d.ended || failedInResponse(err)) throw last;
      ctx.log.debug("outbound address failed", {
        server_name: req.guard,
        url: redactUrl(url),
        address: target.hostname,
        error: last.message,
      });
    }
  }
  throw last ?? new OutboundError("other", `no address for ${redactUrl(url)}`);
}
