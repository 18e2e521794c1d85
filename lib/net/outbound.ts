/**
 * The one outbound HTTP client (openid-and-discovery.md §4, §6, §8; deno-stack.md §3).
 *
 * Owns: the SSRF guard at connect time (resolve → check every address → connect to exactly the
 * checked address, never a second resolution), manual redirects with per-hop guarding (§8.4),
 * response size caps and whole-request deadlines (§8.5; all deadlines share one clock timer,
 * lib/net/deadline.ts), proxies from the environment (§8.6, lib/net/proxy_env.ts; `CONNECT`
 * tunnels, lib/net/dial.ts), connection reuse per (address, port, TLS name), and failures
 * classified as {@linkcode OutboundError} kinds so callers can say why a call failed. Error
 * messages and logs show URLs without their query string (the userinfo query carries the
 * access token).
 *
 * Every request — federation and client discovery, userinfo, the delayed-event calls, the
 * app-service calls — runs on the built-in keep-alive HTTP/1.1 client (lib/net/http1.ts,
 * lib/net/http1_pool.ts), which dials the address it was given itself: pinning needs no proxy
 * and no loopback listener, and a request costs a fraction of `fetch` (docs/performance.md).
 * Requests without `guard` are operator-configured destinations (overrides): no guard, the
 * host name dialed as configured.
 *
 * TLS: trust roots are Deno's default store plus `caCerts` (`SSL_CERT_FILE`); SNI, certificate
 * name and `Host` are always those of the URL. Skip-verify is applied by the launcher
 * (`--unsafely-ignore-certificate-errors`, honoured by `Deno.startTls`).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import { USER_AGENT } from "../version.ts";
import { DeadlineSet, type RequestDeadline } from "./deadline.ts";
import { type Connector, parseProxy, type ProxyEndpoint } from "./dial.ts";
import type { Resolver } from "./dns.ts";
import type { Http1Response } from "./http1.ts";
import { Http1Pool } from "./http1_pool.ts";
import { nextHop, type RedirectPolicy } from "./http_steps.ts";
import { classifyFailure, OutboundError, redactUrl } from "./outbound_error.ts";
import { type HopContext, type HopRequest, sendHop } from "./outbound_hops.ts";
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
  /** Closes every connection; later requests fail. */
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
  /** Test seam: replaces `Deno.connect`. */
  connect?: Connector;
  /** Proxy settings; default: read `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment. */
  proxies?: ProxySettings;
  /** Per-address connect timeout, default 5 s (§8.5). */
  connectTimeoutMs?: number;
  /** Connections per target (homeserver address), default 16. */
  maxConnectionsPerTarget?: number;
}

/** RFC 9110 token: a header field name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a header value may not contain (as `Headers` would refuse it). */
const BAD_VALUE = /[\0\r\n]|[^\0-\xff]/;

/**
 * The request's header fields, validated like `Headers` does, names in lower case, `Host`
 * dropped (it is always the URL's), `Accept: application/json`, `User-Agent` and
 * `Accept-Encoding: identity` (lib/net/http1.ts refuses coded bodies) added unless given.
 */
function headerFields(given: Record<string, string> | undefined): [string, string][] {
  const fields: [string, string][] = [];
  let accept = false;
  let agent = false;
  let coding = false;
  for (const [name, value] of Object.entries(given ?? {})) {
    if (!TOKEN.test(name)) throw new TypeError(`Invalid header name: ${name}`);
    if (BAD_VALUE.test(value)) throw new TypeError(`Invalid value of header ${name}`);
    const lower = name.toLowerCase();
    if (lower === "host") continue;
    if (lower === "accept") accept = true;
    else if (lower === "user-agent") agent = true;
    else if (lower === "accept-encoding") coding = true;
    fields.push([lower, value.trim()]);
  }
  if (!accept) fields.push(["accept", "application/json"]);
  if (!agent) fields.push(["user-agent", USER_AGENT]);
  if (!coding) fields.push(["accept-encoding", "identity"]);
  return fields;
}

/** A finished request; its headers are built only when asked for (a getter). */
class OutboundResult implements OutboundResponse {
  readonly #res: Http1Response;
  readonly url: string;

  constructor(res: Http1Response, url: string) {
    this.#res = res;
    this.url = url;
  }

  get status(): number {
    return this.#res.status;
  }

  get body(): Uint8Array {
    return this.#res.body;
  }

  get headers(): Headers {
    return this.#res.headers;
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
  let closed = false;
  const http1 = new Http1Pool({
    clock,
    caCerts: opts.caCerts,
    connect: opts.connect,
    dial: opts.dial,
    connectTimeoutMs: opts.connectTimeoutMs,
    maxPerTarget: opts.maxConnectionsPerTarget,
  });
  const parsedProxies = new Map<string, ProxyEndpoint | Error>();
  const proxyOf = (url: URL): ProxyEndpoint | Error | undefined => {
    const raw = proxyFor(proxies, url);
    if (raw === undefined) return undefined;
    let parsed = parsedProxies.get(raw);
    if (!parsed) parsedProxies.set(raw, parsed = parseProxy(raw));
    return parsed;
  };
  const deadlines = new DeadlineSet(clock);
  const ctx: HopContext = { policy, resolver, log, http1 };

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
            proxy: proxyOf(url),
          };
          const hop = await sendHop(ctx, hopReq, d);
          const policy = req.redirect;
          if (!policy || !policy.statuses.includes(hop.status) || !hop.headers.has("location")) {
            return new OutboundResult(hop, url.href);
          }
          visited ??= new Set([first.href]);
          const next = nextHop(url, hop, { policy, visited });
          visited.add(next.href);
          if (
            hop.status === 303 || ((hop.status === 301 || hop.status === 302) && method === "POST")
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
        }
      } finally {
        d.finish();
      }
    },

    close() {
      if (!closed) {
        closed = true;
        http1.close();
        deadlines.close();
      }
      return Promise.resolve();
    },
  };
}
