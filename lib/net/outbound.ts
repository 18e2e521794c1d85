/**
 * The one outbound HTTP client for homeserver traffic (openid-and-discovery.md §4, §6, §8;
 * deno-stack.md §3).
 *
 * Owns: the SSRF guard at connect time (resolve → check every address → connect to exactly the
 * checked address, never a second resolution), manual redirects with per-hop guarding (§8.4),
 * response size caps and whole-request deadlines (§8.5; all deadlines share one clock timer,
 * lib/net/deadline.ts), proxies from the environment (§8.6, see lib/net/proxy_env.ts),
 * connection reuse per (address, port, TLS name), and failures classified as
 * {@linkcode OutboundError} kinds so callers can say why a call failed. Error messages and logs
 * show URLs without their query string (the userinfo query carries the access token).
 *
 * Two transports (lib/net/outbound_hops.ts), chosen per hop:
 * - POSTs that go direct (no upstream proxy for their URL) — the delayed-event calls, one per
 *   participant every 0.8·T (delegation.md §4) — use the built-in keep-alive HTTP/1.1 client
 *   (lib/net/http1_pool.ts), which costs a fraction of `fetch` per request
 *   (docs/performance.md). Guarded ones dial the checked address themselves.
 * - Everything else uses `fetch` with pooled `Deno.HttpClient`s: guarded requests through the
 *   in-process pinning proxy, proxied ones through the upstream proxy.
 *
 * Requests without `guard` are operator-configured destinations (overrides, SFU): no guard, no
 * pinning, the configured CA certificates. When no proxy is chosen for such a GET, Deno's HTTP
 * client still applies `HTTPS_PROXY`/`NO_PROXY` from the process environment on its own (same
 * variables, its own matching rules); the built-in client follows only lib/net/proxy_env.ts.
 *
 * TLS: trust roots are Deno's default store plus `caCerts`; SNI, certificate name and `Host`
 * are always those of the URL (the pinning proxy only carries bytes). Skip-verify is applied by
 * the launcher (`--unsafely-ignore-certificate-errors`) and covers both transports.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import { USER_AGENT } from "../version.ts";
import { ClientPool } from "./client_pool.ts";
import { DeadlineSet, type RequestDeadline } from "./deadline.ts";
import type { Resolver } from "./dns.ts";
import { Http1Pool } from "./http1_pool.ts";
import { nextHop, type RedirectPolicy } from "./http_steps.ts";
import { classifyFailure, OutboundError, redactUrl } from "./outbound_error.ts";
import { fetchHop, type Hop, type HopContext, type HopRequest, http1Hop } from "./outbound_hops.ts";
import { type Connector, type PinProxy, startPinProxy } from "./pin_proxy.ts";
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
  /** Test seam: maps a checked (address, port) onto the socket actually dialed (both transports). */
  dial?: (host: string, port: number) => { hostname: string; port: number };
  /** Test seam: replaces `Deno.connect` (pinning proxy and built-in client). */
  connect?: Connector;
  /** Proxy settings; default: read `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment. */
  proxies?: ProxySettings;
  /** Per-address connect timeout, default 5 s (§8.5). */
  connectTimeoutMs?: number;
  /** Idle pinned clients are closed after this long, default 2 min. */
  clientIdleMs?: number;
  /** Listen address of the pinning proxy (default `PIN_PROXY_HOSTNAME`). */
  pinProxyHostname?: string;
  /**
   * Send direct (not proxied) POSTs over the built-in HTTP/1.1 client instead of `fetch`,
   * default true (lib/net/outbound_hops.ts).
   */
  builtinHttp1Posts?: boolean;
}

/** RFC 9110 token: a header field name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a header value may not contain (as `Headers` would refuse it). */
const BAD_VALUE = /[\0\r\n]|[^\0-\xff]/;

/**
 * The request's header fields, validated like `Headers` does, names in lower case, `Host`
 * dropped (it is always the URL's), `Accept: application/json` and `User-Agent` added unless
 * given. A plain list: both transports take it without building a `Headers` object.
 */
function headerFields(given: Record<string, string> | undefined): [string, string][] {
  const fields: [string, string][] = [];
  let accept = false;
  let agent = false;
  for (const [name, value] of Object.entries(given ?? {})) {
    if (!TOKEN.test(name)) throw new TypeError(`Invalid header name: ${name}`);
    if (BAD_VALUE.test(value)) throw new TypeError(`Invalid value of header ${name}`);
    const lower = name.toLowerCase();
    if (lower === "host") continue;
    if (lower === "accept") accept = true;
    else if (lower === "user-agent") agent = true;
    fields.push([lower, value.trim()]);
  }
  if (!accept) fields.push(["accept", "application/json"]);
  if (!agent) fields.push(["user-agent", USER_AGENT]);
  return fields;
}

/** A finished request; its headers are built only when asked for (a getter). */
class OutboundResult implements OutboundResponse {
  readonly #hop: Hop;
  readonly status: number;
  readonly body: Uint8Array;
  readonly url: string;

  constructor(hop: Hop, parts: { body: Uint8Array; url: string }) {
    this.#hop = hop;
    this.status = hop.status;
    this.body = parts.body;
    this.url = parts.url;
  }

  get headers(): Headers {
    return this.#hop.headers;
  }
}

function classifyEnded(d: RequestDeadline, url: URL): OutboundError {
  return classifyFailure(undefined, {
    timedOut: d.timedOut,
    callerAborted: d.callerAborted,
    url,
  });
}

/** Creates the outbound client. */
export function createOutbound(opts: OutboundOptions): Outbound {
  const { policy, resolver, log, clock } = opts;
  const proxies = opts.proxies ?? readProxySettings(processEnv);
  const builtinPosts = opts.builtinHttp1Posts ?? true;
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
  const http1 = new Http1Pool({
    clock,
    caCerts: opts.caCerts,
    connect: opts.connect,
    dial: opts.dial,
    connectTimeoutMs: opts.connectTimeoutMs,
  });
  const deadlines = new DeadlineSet(clock);
  const ctx: HopContext = { policy, resolver, log, pool, http1 };

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
      let headers = headerFields(req.headers);
      const d = deadlines.start(req.timeoutMs, req.signal);
      let method: string = req.method ?? "GET";
      let body: string | undefined = req.body;
      let connectTo = req.connectTo;
      const first = url;
      let visited: Set<string> | undefined;
      try {
        for (;;) {
          if (d.ended) throw classifyEnded(d, url);
          const hopReq: HopRequest = {
            url,
            method,
            headers,
            body,
            maxBodyBytes: req.maxBodyBytes,
            guard: req.guard?.serverName,
            connectTo,
            proxyUrl: proxyFor(proxies, url),
          };
          const builtin = builtinPosts && method === "POST" && hopReq.proxyUrl === undefined;
          const hop = await (builtin ? http1Hop : fetchHop)(ctx, hopReq, d);
          try {
            const policy = req.redirect;
            if (policy && policy.statuses.includes(hop.status) && hop.headers.has("location")) {
              await hop.discard();
              visited ??= new Set([first.href]);
              const next = nextHop(url, hop, { policy, visited });
              visited.add(next.href);
              if (
                hop.status === 303 ||
                ((hop.status === 301 || hop.status === 302) && method === "POST")
              ) {
                method = "GET";
                body = undefined;
                headers = headers.filter(([name]) => name !== "content-type");
              }
              log.debug("following redirect", {
                from: redactUrl(url),
                to: redactUrl(next),
                status: hop.status,
              });
              url = next;
              connectTo = undefined;
              continue;
            }
            return new OutboundResult(hop, { body: await hop.read(), url: url.href });
          } catch (err) {
            await hop.discard();
            throw classifyFailure(err, {
              timedOut: d.timedOut,
              callerAborted: d.callerAborted,
              url,
            });
          } finally {
            hop.done();
          }
        }
      } finally {
        d.finish();
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      pool.close();
      http1.close();
      deadlines.close();
      await pinProxy?.close();
    },
  };
}
