/**
 * The one outbound HTTP client for homeserver traffic (openid-and-discovery.md §4, §6, §8;
 * deno-stack.md §3).
 *
 * Owns: the SSRF guard at connect time (resolve → check every address → connect to exactly the
 * checked address through the pinning proxy, never a second resolution), manual redirects with
 * per-hop guarding (§8.4), response size caps and whole-request deadlines (§8.5), proxies from
 * the environment (§8.6, see lib/net/proxy_env.ts), connection reuse per (address, port, TLS
 * name), and failures classified as {@linkcode OutboundError} kinds so callers can say why a
 * call failed. Error messages and logs show URLs without their query string (the userinfo query
 * carries the access token).
 *
 * Requests without `guard` are operator-configured destinations (overrides, SFU): one plain
 * pooled client with the configured CA certificates, no guard, no pinning. When no proxy is
 * chosen for such a request, Deno's HTTP client still applies `HTTPS_PROXY`/`NO_PROXY` from the
 * process environment on its own (same variables, its own matching rules).
 *
 * TLS: trust roots are Deno's default store plus `caCerts`; SNI, certificate name and `Host`
 * are always those of the URL (the pinning proxy only carries bytes). Skip-verify is applied by
 * the launcher (`--unsafely-ignore-certificate-errors`) and covers every client made here.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import { USER_AGENT } from "../version.ts";
import { ClientPool, type PooledClient } from "./client_pool.ts";
import { DnsError, type Resolver } from "./dns.ts";
import { classifyFailure, OutboundError, redactUrl } from "./outbound_error.ts";
import { nextHop, readBody, type RedirectPolicy } from "./http_steps.ts";
import { formatIp, parseIp } from "./ip.ts";
import { type Connector, type Pin, type PinProxy, startPinProxy } from "./pin_proxy.ts";
import { processEnv, proxyFor, type ProxySettings, readProxySettings } from "./proxy_env.ts";
import type { OutboundPolicy } from "./ssrf.ts";

export { OutboundError, type OutboundFailure, redactUrl } from "./outbound_error.ts";
export { type RedirectPolicy, WELL_KNOWN_REDIRECTS } from "./http_steps.ts";

/** One request. */
export interface OutboundRequest {
  url: string;
  method?: "GET" | "POST";
  /** `Accept: application/json` and `User-Agent` are added unless given. */
  headers?: Record<string, string>;
  body?: string;
  /** Whole request including body read and redirects. */
  timeoutMs: number;
  /** Larger bodies fail with `too_large` (the body is cancelled, the connection dropped). */
  maxBodyBytes: number;
  /** Absent = never follow: a 3xx is returned as a response. */
  redirect?: RedirectPolicy;
  /**
   * SSRF guard: when set, every resolved address is checked for this server name's chain
   * (allowances of §8.3); undefined = operator-configured destination, not guarded.
   */
  guard?: { serverName: string };
  /**
   * Connect to this already-resolved address and port instead of resolving the URL host
   * (federation destinations: the URL carries the Host/TLS name, the port may differ). `host` is
   * the name the address was resolved from (for allow-list matching), default the URL host.
   * Only used for guarded requests and only for the first hop.
   */
  connectTo?: { address: string; port: number; host?: string };
  signal?: AbortSignal;
}

/** A complete response (body fully read). */
export interface OutboundResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** Final URL after redirects (may carry the request's query: do not log it as is). */
  url: string;
}

/** The outbound client. */
export interface Outbound {
  request(req: OutboundRequest): Promise<OutboundResponse>;
  /** Stops the pinning proxy and closes every client. */
  close(): Promise<void>;
}

/** Options of {@linkcode createOutbound}. */
export interface OutboundOptions {
  policy: OutboundPolicy;
  resolver: Resolver;
  /** Extra trust roots (PEM), in addition to the system store. */
  caCerts: readonly string[];
  log: Logger;
  clock: Clock;
  /** Test seam: maps a checked (address, port) onto the socket actually dialed. */
  dial?: (host: string, port: number) => { hostname: string; port: number };
  /** Test seam: replaces `Deno.connect` in the pinning proxy. */
  connect?: Connector;
  /** Proxy settings; default: read `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment. */
  proxies?: ProxySettings;
  /** Per-address connect timeout, default 5 s (§8.5). */
  connectTimeoutMs?: number;
  /** Idle pinned clients are closed after this long, default 2 min. */
  clientIdleMs?: number;
  /** Listen address of the pinning proxy (default `PIN_PROXY_HOSTNAME`). */
  pinProxyHostname?: string;
}

function defaultPort(url: URL): number {
  return url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
}

function bareHostname(url: URL): string {
  const h = url.hostname;
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

interface Attempt {
  response: Response;
  done: () => void;
}

interface Deadline {
  signal: AbortSignal;
  timedOut: () => boolean;
  callerAborted: () => boolean;
  cancel: () => void;
}

/** Creates the outbound client. */
export function createOutbound(opts: OutboundOptions): Outbound {
  const { policy, resolver, log, clock } = opts;
  const proxies = opts.proxies ?? readProxySettings(processEnv);
  let pinProxy: PinProxy | undefined;
  let closed = false;
  const getPinProxy = (): PinProxy => {
    pinProxy ??= startPinProxy({
      clock,
      log,
      dial: opts.dial,
      connect: opts.connect,
      connectTimeoutMs: opts.connectTimeoutMs,
      hostname: opts.pinProxyHostname,
    });
    return pinProxy;
  };
  const pool = new ClientPool({
    caCerts: opts.caCerts,
    clock,
    pinProxy: getPinProxy,
    idleMs: opts.clientIdleMs,
  });

  function deadline(timeoutMs: number, caller: AbortSignal | undefined): Deadline {
    const ac = new AbortController();
    let timedOut = false;
    const timer = clock.setTimer(timeoutMs, () => {
      timedOut = true;
      ac.abort(new DOMException("request timed out", "TimeoutError"));
    });
    const signal = caller ? AbortSignal.any([ac.signal, caller]) : ac.signal;
    return {
      signal,
      timedOut: () => timedOut,
      callerAborted: () => caller?.aborted === true && !timedOut,
      cancel: () => timer.cancel(),
    };
  }

  function classify(err: unknown, d: Deadline, url: URL, pin?: Pin): OutboundError {
    return classifyFailure(err, {
      timedOut: d.timedOut(),
      callerAborted: d.callerAborted(),
      url,
      ...(pin ? { pin } : {}),
    });
  }

  async function send(
    url: URL,
    init: RequestInit,
    entry: PooledClient,
  ): Promise<Attempt> {
    pool.acquire(entry);
    try {
      const response = await fetch(url, { ...init, client: entry.client, redirect: "manual" });
      return { response, done: () => pool.release(entry) };
    } catch (err) {
      pool.release(entry);
      throw err;
    }
  }

  /** Addresses of `host` that pass the guard; logs and skips denied ones. */
  async function guardedAddresses(
    serverName: string,
    url: URL,
    connectTo: OutboundRequest["connectTo"],
    d: Deadline,
  ): Promise<{ address: string; port: number }[]> {
    const host = bareHostname(url);
    const name = connectTo?.host ?? host;
    const port = connectTo?.port ?? defaultPort(url);
    const candidates = connectTo ? [connectTo.address] : await resolver.lookup(host, d.signal);
    const allowed: { address: string; port: number }[] = [];
    const denied: string[] = [];
    for (const text of candidates) {
      const ip = parseIp(text);
      if (!ip) continue;
      const verdict = policy.check({ serverName, host: name, address: ip.value });
      if (verdict.allowed) allowed.push({ address: formatIp(ip.value), port });
      else {
        denied.push(`${text} (${verdict.reason})`);
        log.warn("destination not allowed", {
          server_name: serverName,
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

  async function attempt(
    url: URL,
    init: RequestInit,
    req: OutboundRequest,
    connectTo: OutboundRequest["connectTo"],
    d: Deadline,
  ): Promise<Attempt> {
    const proxyUrl = proxyFor(proxies, url);
    if (!req.guard) {
      const entry = proxyUrl ? pool.upstream(proxyUrl) : pool.plain();
      try {
        return await send(url, init, entry);
      } catch (err) {
        throw classify(err, d, url);
      }
    }
    const serverName = req.guard.serverName;
    if (proxyUrl) {
      // Best effort (lib/net/proxy_env.ts): the proxy resolves and connects itself.
      try {
        await guardedAddresses(serverName, url, connectTo, d);
      } catch (err) {
        if (!(err instanceof DnsError)) throw classify(err, d, url);
      }
      try {
        return await send(url, init, pool.upstream(proxyUrl));
      } catch (err) {
        throw classify(err, d, url);
      }
    }
    let targets: { address: string; port: number }[];
    try {
      targets = await guardedAddresses(serverName, url, connectTo, d);
    } catch (err) {
      throw classify(err, d, url);
    }
    const scheme = url.protocol === "http:" ? "http:" : "https:";
    let last: OutboundError | undefined;
    for (const target of targets) {
      const entry = pool.pinned(scheme, target.address, target.port, bareHostname(url));
      try {
        return await send(url, init, entry);
      } catch (err) {
        last = classify(err, d, url, entry.pin);
        if (d.signal.aborted) throw last;
        log.debug("outbound address failed", {
          server_name: serverName,
          url: redactUrl(url),
          address: target.address,
          error: last.message,
        });
      }
    }
    throw last ?? new OutboundError("other", `no address for ${redactUrl(url)}`);
  }

  return {
    async request(req) {
      if (closed) throw new OutboundError("aborted", "outbound client is closed");
      let url: URL;
      try {
        url = new URL(req.url);
      } catch {
        throw new OutboundError("other", "invalid URL");
      }
      if (url.protocol !== "https:" && url.protocol !== "http:") {
        throw new OutboundError("other", `unsupported URL scheme ${url.protocol}`);
      }
      const d = deadline(req.timeoutMs, req.signal);
      const headers = new Headers(req.headers);
      headers.delete("host");
      if (!headers.has("accept")) headers.set("Accept", "application/json");
      if (!headers.has("user-agent")) headers.set("User-Agent", USER_AGENT);
      let method: string = req.method ?? "GET";
      let body: string | undefined = req.body;
      let connectTo = req.connectTo;
      const visited = new Set<string>([url.href]);
      try {
        for (;;) {
          if (d.signal.aborted) throw classify(d.signal.reason, d, url);
          const init: RequestInit = { method, headers, body, signal: d.signal };
          const { response, done } = await attempt(url, init, req, connectTo, d);
          try {
            const policy = req.redirect;
            if (
              policy && policy.statuses.includes(response.status) &&
              response.headers.has("location")
            ) {
              await response.body?.cancel().catch(() => {});
              const next = nextHop(url, response, { policy, visited });
              visited.add(next.href);
              if (
                response.status === 303 ||
                ((response.status === 301 || response.status === 302) && method === "POST")
              ) {
                method = "GET";
                body = undefined;
                headers.delete("content-type");
              }
              log.debug("following redirect", {
                from: redactUrl(url),
                to: redactUrl(next),
                status: response.status,
              });
              url = next;
              connectTo = undefined;
              continue;
            }
            const bytes = await readBody(response, req.maxBodyBytes, url);
            return {
              status: response.status,
              headers: response.headers,
              body: bytes,
              url: url.href,
            };
          } catch (err) {
            await response.body?.cancel().catch(() => {});
            throw classify(err, d, url);
          } finally {
            done();
          }
        }
      } finally {
        d.cancel();
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      pool.close();
      await pinProxy?.close();
    },
  };
}
