/**
 * Client-server API discovery for delayed-event calls (openid-and-discovery.md §9).
 *
 * Order: `LIVEKIT_CS_API_URL_OVERRIDES` (exact key, no network, not guarded) → cache (positive
 * 4 h, negative 60 s) → `GET https://<server name verbatim, port included>/.well-known/matrix/client`
 * (redirects ≤ 5, https only, every hop guarded; 10 s; 64 KiB) → validation → stale fallback
 * (an expired positive answer younger than 24 h is used, with a WARN). The client's
 * `delay_cs_api_url` is never consulted. Concurrent discoveries of one name share one fetch.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { ServerName } from "../ids.ts";
import type { Logger } from "../log.ts";
import { type Outbound, WELL_KNOWN_REDIRECTS } from "../net/outbound.ts";
import { InFlight, LruCache, raceSignal } from "./cache.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";

/** A client-server API base URL. */
export interface CsApiBase {
  /** Absolute URL without trailing `/`, query or fragment; may carry a path prefix. */
  baseUrl: string;
  /** false when it came from LIVEKIT_CS_API_URL_OVERRIDES (operator-configured, not guarded). */
  guarded: boolean;
}

/** Resolves the CS API of a server name. */
export interface CsApiResolver {
  /**
   * undefined = could not resolve (the caller answers 400 or aborts the job). Rejects only with
   * the signal's reason when `signal` aborts first (the shared fetch keeps running).
   */
  resolve(serverName: ServerName, signal?: AbortSignal): Promise<CsApiBase | undefined>;
}

/** Options of {@linkcode createCsApiResolver}. */
export interface CsApiResolverOptions {
  outbound: Outbound;
  overrides: ReadonlyMap<string, string>;
  clock: Clock;
  log: Logger;
  maxEntries?: number;
  /** Counts cache hits and misses. */
  metrics?: Pick<ServiceMetrics, "discoveryCache">;
}

const POSITIVE_TTL_MS = 4 * 60 * 60_000;
const NEGATIVE_TTL_MS = 60_000;
const STALE_LIMIT_MS = 24 * 60 * 60_000;
const MAX_BODY = 64 * 1024;

interface Entry {
  /** Last good base URL and when it was fetched (monotonic). */
  good: { baseUrl: string; fetchedAt: number } | undefined;
  /** Whether the last fetch succeeded. */
  fresh: boolean;
  /** Monotonic time after which the entry is refetched. */
  refreshAt: number;
}

/**
 * Validates `m.homeserver.base_url` (§9 3b): absolute `https` URL; query and fragment dropped;
 * trailing `/` removed; path prefix kept. Returns undefined when invalid.
 */
export function normaliseBaseUrl(raw: unknown): string | undefined {
  if (typeof raw !== "string" || raw === "") return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" || url.hostname === "" || url.username || url.password) {
    return undefined;
  }
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${url.host}${path}`;
}

/** Creates the resolver. */
export function createCsApiResolver(opts: CsApiResolverOptions): CsApiResolver {
  const { outbound, overrides, clock, log } = opts;
  const cache = new LruCache<string, Entry>(opts.maxEntries);
  const flights = new InFlight<string, CsApiBase | undefined>();

  async function fetchBase(serverName: string): Promise<
    { ok: true; baseUrl: string } | {
      ok: false;
      why: string;
    }
  > {
    let res;
    try {
      res = await outbound.request({
        url: `https://${serverName}/.well-known/matrix/client`,
        timeoutMs: 10_000,
        maxBodyBytes: MAX_BODY,
        redirect: WELL_KNOWN_REDIRECTS,
        guard: { serverName },
      });
    } catch (err) {
      return { ok: false, why: err instanceof Error ? err.message : String(err) };
    }
    if (res.status === 404) return { ok: false, why: "no record (404)" };
    if (res.status !== 200) return { ok: false, why: `status ${res.status}` };
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(res.body));
    } catch {
      return { ok: false, why: "body is not JSON" };
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      return { ok: false, why: "body is not a JSON object" };
    }
    const hs = (doc as Record<string, unknown>)["m.homeserver"];
    const raw = typeof hs === "object" && hs !== null && !Array.isArray(hs)
      ? (hs as Record<string, unknown>).base_url
      : undefined;
    if (typeof raw !== "string" || raw === "") {
      return { ok: false, why: "m.homeserver.base_url missing" };
    }
    const baseUrl = normaliseBaseUrl(raw);
    if (!baseUrl) return { ok: false, why: "m.homeserver.base_url is not an absolute https URL" };
    return { ok: true, baseUrl };
  }

  function stale(entry: Entry | undefined): CsApiBase | undefined {
    if (!entry?.good) return undefined;
    if (clock.monotonic() - entry.good.fetchedAt >= STALE_LIMIT_MS) return undefined;
    return { baseUrl: entry.good.baseUrl, guarded: true };
  }

  async function refresh(serverName: string): Promise<CsApiBase | undefined> {
    const previous = cache.peek(serverName);
    const outcome = await fetchBase(serverName);
    const now = clock.monotonic();
    if (outcome.ok) {
      cache.set(serverName, {
        good: { baseUrl: outcome.baseUrl, fetchedAt: now },
        fresh: true,
        refreshAt: now + POSITIVE_TTL_MS,
      });
      return { baseUrl: outcome.baseUrl, guarded: true };
    }
    cache.set(serverName, {
      good: previous?.good,
      fresh: false,
      refreshAt: now + NEGATIVE_TTL_MS,
    });
    const fallback = stale(previous);
    if (fallback) {
      log.warn("client well-known failed, using the last known client-server API", {
        server_name: serverName,
        base_url: fallback.baseUrl,
        error: outcome.why,
      });
      return fallback;
    }
    log.debug("client-server API discovery failed", {
      server_name: serverName,
      error: outcome.why,
    });
    return undefined;
  }

  return {
    resolve(serverName, signal) {
      const override = overrides.get(serverName);
      if (override !== undefined) {
        return Promise.resolve({ baseUrl: override.replace(/\/+$/, ""), guarded: false });
      }
      const entry = cache.get(serverName);
      const fresh = entry !== undefined && clock.monotonic() < entry.refreshAt;
      opts.metrics?.discoveryCache.inc({ cache: "cs_api", result: fresh ? "hit" : "miss" });
      if (entry && clock.monotonic() < entry.refreshAt) {
        if (entry.fresh && entry.good) {
          return Promise.resolve({ baseUrl: entry.good.baseUrl, guarded: true });
        }
        return Promise.resolve(stale(entry));
      }
      return raceSignal(flights.run(serverName, () => refresh(serverName)), signal);
    },
  };
}
