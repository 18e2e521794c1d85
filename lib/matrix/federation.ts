/**
 * Federation server-name resolution (openid-and-discovery.md §3) with the
 * `/.well-known/matrix/server` fetch (§4) and its cache (§5).
 *
 * Produces the ordered destinations of a server name: (address, port) plus the `Host` header
 * and TLS name of the resolution case. Addresses are not checked here; the outbound client
 * guards each one when it connects. Only one level of well-known delegation is followed.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import type { Resolver, SrvRecord } from "../net/dns.ts";
import { type Outbound, OutboundError, WELL_KNOWN_REDIRECTS } from "../net/outbound.ts";
import { InFlight, LruCache, raceSignal } from "./cache.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import { parseServerName } from "./server_name.ts";

/** One place to send a federation request. */
export interface Destination {
  /** IP address to connect to (IPv6 without brackets). */
  address: string;
  port: number;
  /** `Host` header (and URL authority) of requests to this destination. */
  hostHeader: string;
  /** Name the certificate must be valid for (an IP for IP literals). */
  tlsName: string;
  /** The DNS name whose A/AAAA answer gave `address` (SRV target, delegated name, hostname). */
  resolvedName?: string;
}

/** Resolves server names to destinations. */
export interface FederationDiscovery {
  /** Ordered destinations; rejects with {@linkcode DiscoveryError} when there is none. */
  resolve(serverName: string, signal?: AbortSignal): Promise<Destination[]>;
}

/** No destination could be found; the message lists what was tried. */
export class DiscoveryError extends Error {
  readonly stage: "parse" | "dns";
  readonly serverName: string;
  constructor(stage: "parse" | "dns", serverName: string, message: string) {
    super(message);
    this.name = "DiscoveryError";
    this.stage = stage;
    this.serverName = serverName;
  }
}

/** Options of {@linkcode createFederationDiscovery}. */
export interface FederationDiscoveryOptions {
  outbound: Outbound;
  resolver: Resolver;
  clock: Clock;
  log: Logger;
  maxEntries?: number;
  /** Counts cache hits and misses. */
  metrics?: Pick<ServiceMetrics, "discoveryCache">;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const WELL_KNOWN_MIN_MS = 5 * MINUTE;
const WELL_KNOWN_MAX_MS = 48 * HOUR;
const WELL_KNOWN_DEFAULT_MS = 24 * HOUR;
const NEGATIVE_FIRST_MS = 2 * MINUTE;
const NEGATIVE_MAX_MS = HOUR;
const STALE_GRACE_MS = HOUR;
const STALE_RETRY_MS = 2 * MINUTE;
const DEFAULT_PORT = 8448;
const MAX_BODY = 64 * 1024;

/**
 * Lifetime of a `/.well-known/matrix/server` answer (§5): `Cache-Control` `max-age`
 * (`no-store`/`no-cache` → minimum), else `Expires`, else 24 h; clamped to [5 min, 48 h].
 */
export function wellKnownLifetimeMs(headers: Headers, nowMs: number): number {
  let lifetime = WELL_KNOWN_DEFAULT_MS;
  const cc = headers.get("cache-control");
  const expires = headers.get("expires");
  if (cc !== null && /\S/.test(cc)) {
    const directives = cc.toLowerCase().split(",").map((d) => d.trim());
    const maxAge = directives.find((d) => d.startsWith("max-age="));
    if (directives.includes("no-store") || directives.includes("no-cache")) lifetime = 0;
    else if (maxAge !== undefined) {
      const n = Number(maxAge.slice("max-age=".length).replace(/^"|"$/g, ""));
      lifetime = Number.isFinite(n) ? n * 1000 : 0;
    } else if (expires !== null) lifetime = expiresLifetime(expires, nowMs);
  } else if (expires !== null) lifetime = expiresLifetime(expires, nowMs);
  return Math.min(WELL_KNOWN_MAX_MS, Math.max(WELL_KNOWN_MIN_MS, lifetime));
}

function expiresLifetime(expires: string, nowMs: number): number {
  const at = Date.parse(expires);
  return Number.isFinite(at) ? at - nowMs : 0;
}

/** RFC 2782 order: ascending priority; weighted random within one priority. */
export function orderSrv(records: readonly SrvRecord[], random: () => number): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) {
    const group = byPriority.get(r.priority) ?? [];
    group.push(r);
    byPriority.set(r.priority, group);
  }
  const out: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    // Zero-weight records first, as RFC 2782 asks, then repeated weighted picks.
    const group = [...(byPriority.get(priority) ?? [])].sort((a, b) =>
      (a.weight === 0 ? 0 : 1) - (b.weight === 0 ? 0 : 1)
    );
    while (group.length > 0) {
      const total = group.reduce((sum, r) => sum + r.weight, 0);
      const pick = Math.floor(random() * (total + 1));
      let running = 0;
      let index = group.length - 1;
      for (let i = 0; i < group.length; i++) {
        running += group[i]!.weight;
        if (running >= pick) {
          index = i;
          break;
        }
      }
      out.push(group.splice(index, 1)[0]!);
    }
  }
  return out;
}

interface WellKnownEntry {
  /** `m.server` for a positive entry. */
  server: string | undefined;
  /** Monotonic time after which the entry is refreshed. */
  refreshAt: number;
  /** Positive entries: until when a failed refresh may keep using this value. */
  staleUntil: number;
  /** Consecutive failures (negative back-off). */
  failures: number;
}

type WellKnownOutcome =
  | { ok: true; server: string; lifetimeMs: number }
  | { ok: false; transient: boolean; why: string };

/** Creates the discovery with its well-known cache. */
export function createFederationDiscovery(opts: FederationDiscoveryOptions): FederationDiscovery {
  const { outbound, resolver, clock, log } = opts;
  const cache = new LruCache<string, WellKnownEntry>(opts.maxEntries);
  const flights = new InFlight<string, string | undefined>();

  async function fetchWellKnown(hostname: string): Promise<WellKnownOutcome> {
    let res;
    try {
      res = await outbound.request({
        url: `https://${hostname}/.well-known/matrix/server`,
        timeoutMs: 10_000,
        maxBodyBytes: MAX_BODY,
        redirect: WELL_KNOWN_REDIRECTS,
        guard: { serverName: hostname },
      });
    } catch (err) {
      const kind = err instanceof OutboundError ? err.kind : "other";
      const transient = ["dns", "connect", "tls", "timeout", "other"].includes(kind);
      return { ok: false, transient, why: err instanceof Error ? err.message : String(err) };
    }
    if (res.status !== 200) {
      return { ok: false, transient: res.status >= 500, why: `status ${res.status}` };
    }
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(res.body));
    } catch {
      return { ok: false, transient: false, why: "body is not JSON" };
    }
    const server = typeof doc === "object" && doc !== null && !Array.isArray(doc)
      ? (doc as Record<string, unknown>)["m.server"]
      : undefined;
    if (typeof server !== "string" || server === "" || !parseServerName(server)) {
      return { ok: false, transient: false, why: "missing or invalid m.server" };
    }
    return { ok: true, server, lifetimeMs: wellKnownLifetimeMs(res.headers, clock.now()) };
  }

  async function refresh(hostname: string, notes: string[]): Promise<string | undefined> {
    const previous = cache.peek(hostname);
    const outcome = await fetchWellKnown(hostname);
    const now = clock.monotonic();
    if (outcome.ok) {
      cache.set(hostname, {
        server: outcome.server,
        refreshAt: now + outcome.lifetimeMs,
        staleUntil: now + outcome.lifetimeMs + STALE_GRACE_MS,
        failures: 0,
      });
      return outcome.server;
    }
    notes.push(`well-known: ${outcome.why}`);
    if (outcome.transient && previous?.server !== undefined && now < previous.staleUntil) {
      log.warn("well-known refresh failed, using the expired answer", {
        host: hostname,
        error: outcome.why,
      });
      cache.set(hostname, { ...previous, refreshAt: now + STALE_RETRY_MS });
      return previous.server;
    }
    const failures = previous && previous.server === undefined ? previous.failures + 1 : 1;
    const backoff = Math.min(NEGATIVE_MAX_MS, NEGATIVE_FIRST_MS * 2 ** (failures - 1));
    cache.set(hostname, { server: undefined, refreshAt: now + backoff, staleUntil: 0, failures });
    log.debug("well-known invalid", { host: hostname, error: outcome.why });
    return undefined;
  }

  function wellKnown(hostname: string, notes: string[], signal?: AbortSignal) {
    const entry = cache.get(hostname);
    if (entry && clock.monotonic() < entry.refreshAt) {
      opts.metrics?.discoveryCache.inc({ cache: "well_known", result: "hit" });
      if (entry.server === undefined) notes.push("well-known: cached failure");
      return Promise.resolve(entry.server);
    }
    opts.metrics?.discoveryCache.inc({ cache: "well_known", result: "miss" });
    return raceSignal(flights.run(hostname, () => refresh(hostname, notes)), signal);
  }

  async function addresses(
    name: string,
    port: number,
    hostHeader: string,
    tlsName: string,
    ctx: { notes: string[]; signal?: AbortSignal },
  ): Promise<Destination[]> {
    try {
      const found = await resolver.lookup(name, ctx.signal);
      return found.map((address) => ({ address, port, hostHeader, tlsName, resolvedName: name }));
    } catch (err) {
      if (ctx.signal?.aborted) throw err;
      ctx.notes.push(`A/AAAA ${name}: ${err instanceof Error ? err.message : String(err)}`);
      return [];
    }
  }

  /** SRV steps (3c/3d, 4/5); undefined when neither service name has records. */
  async function viaSrv(
    name: string,
    ctx: { notes: string[]; signal?: AbortSignal },
  ): Promise<Destination[] | undefined> {
    for (const service of ["_matrix-fed._tcp.", "_matrix._tcp."]) {
      let records: SrvRecord[];
      try {
        records = await resolver.srv(service + name, ctx.signal);
      } catch (err) {
        if (ctx.signal?.aborted) throw err;
        const why = err instanceof Error ? err.message : String(err);
        log.warn("SRV lookup failed", { name: service + name, error: why });
        ctx.notes.push(`SRV ${service}${name}: ${why}`);
        records = [];
      }
      records = records
        .map((r) => ({ ...r, target: r.target.replace(/\.$/, "") }))
        .filter((r) => r.target !== "");
      if (records.length === 0) continue;
      const out: Destination[] = [];
      for (const r of orderSrv(records, () => clock.random())) {
        out.push(...await addresses(r.target, r.port, name, name, ctx));
      }
      return out;
    }
    return undefined;
  }

  async function resolveName(
    name: string,
    ctx: { notes: string[]; signal?: AbortSignal },
  ): Promise<Destination[]> {
    return await viaSrv(name, ctx) ?? await addresses(name, DEFAULT_PORT, name, name, ctx);
  }

  async function destinations(
    serverName: string,
    ctx: { notes: string[]; signal?: AbortSignal },
  ): Promise<Destination[]> {
    const parsed = parseServerName(serverName);
    if (!parsed) throw new DiscoveryError("parse", serverName, "invalid server name");
    if (parsed.ip) {
      const port = parsed.port ?? DEFAULT_PORT;
      return [{ address: parsed.bareHost, port, hostHeader: serverName, tlsName: parsed.bareHost }];
    }
    if (parsed.port !== undefined) {
      return await addresses(parsed.host, parsed.port, serverName, parsed.host, ctx);
    }
    const server = await wellKnown(parsed.host, ctx.notes, ctx.signal);
    if (server === undefined) return await resolveName(parsed.host, ctx);
    const delegated = parseServerName(server);
    if (!delegated) return await resolveName(parsed.host, ctx);
    if (delegated.ip) {
      const port = delegated.port ?? DEFAULT_PORT;
      return [{
        address: delegated.bareHost,
        port,
        hostHeader: server,
        tlsName: delegated.bareHost,
      }];
    }
    if (delegated.port !== undefined) {
      return await addresses(delegated.host, delegated.port, server, delegated.host, ctx);
    }
    return await resolveName(delegated.host, ctx);
  }

  return {
    async resolve(serverName, signal) {
      const notes: string[] = [];
      const found = await destinations(serverName, { notes, signal });
      if (found.length === 0) {
        throw new DiscoveryError(
          "dns",
          serverName,
          `no destination for ${serverName}${notes.length > 0 ? ` (${notes.join("; ")})` : ""}`,
        );
      }
      return found;
    },
  };
}
