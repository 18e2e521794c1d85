/**
 * Name resolution for outbound calls (openid-and-discovery.md §3, §5, §8.5, §8.6).
 *
 * A/AAAA go through the system resolver (`node:dns` `lookup`, i.e. getaddrinfo), so
 * `/etc/hosts` and `nsswitch.conf` are honoured (Kubernetes `hostAliases`, container host
 * entries). SRV goes through `Deno.resolveDns`, configured from `/etc/resolv.conf`. Each query
 * has a 5 s timeout; concurrent identical queries share one lookup.
 *
 * Caching: neither API exposes record TTLs, so answers are kept for fixed lifetimes that stay
 * below the caps of §5 (TTL ≤ 1 h, negative ≤ 5 min): A/AAAA 60 s, SRV 5 min, "not found"
 * 60 s. Other failures (timeouts, SERVFAIL) are not cached. Caches hold at most 10 000 entries.
 *
 * @module
 */
import { promises as nodeDns } from "node:dns";
import type { Clock } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import { InFlight, LruCache, raceSignal } from "../matrix/cache.ts";
import { parseIp } from "./ip.ts";

/** One SRV record; `target` has no trailing dot. */
export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/** Resolver used by discovery and the outbound client. */
export interface Resolver {
  /** A/AAAA addresses of `host` (IP literals are returned as they are). Rejects with DnsError. */
  lookup(host: string, signal?: AbortSignal): Promise<string[]>;
  /** SRV records of `name`; `[]` when the name has none (NXDOMAIN or empty). Rejects on other errors. */
  srv(name: string, signal?: AbortSignal): Promise<SrvRecord[]>;
}

/** Why a query failed. */
export type DnsFailure = "not_found" | "timeout" | "failure";

/** A failed DNS query (the message names the query, never anything secret). */
export class DnsError extends Error {
  readonly code: DnsFailure;
  constructor(code: DnsFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DnsError";
    this.code = code;
  }
}

/** Raw A/AAAA query (test seam); rejects with an error whose `code` is `ENOTFOUND` etc. */
export type LookupFn = (host: string) => Promise<string[]>;
/** Raw SRV query (test seam); rejects with `Deno.errors.NotFound` when there is no record. */
export type SrvFn = (name: string, signal: AbortSignal) => Promise<Deno.SrvRecord[]>;

/** Options of {@linkcode createSystemResolver}. */
export interface SystemResolverOptions {
  clock: Clock;
  log: Logger;
  /** Replaces getaddrinfo (tests). */
  lookup?: LookupFn;
  /** Replaces `Deno.resolveDns(name, "SRV")` (tests). */
  resolveSrv?: SrvFn;
  /** Name server for SRV queries instead of `/etc/resolv.conf` (tests with a local DNS fake). */
  nameServer?: { ipAddr: string; port?: number };
  /** Per-query timeout, default 5 s. */
  timeoutMs?: number;
  maxEntries?: number;
}

const ADDRESS_TTL_MS = 60_000;
const SRV_TTL_MS = 5 * 60_000;
const NEGATIVE_TTL_MS = 60_000;

interface Entry<T> {
  value: T | undefined;
  error: DnsError | undefined;
  expiresAt: number;
}

async function systemLookup(host: string): Promise<string[]> {
  const answers = await nodeDns.lookup(host, { all: true, verbatim: true });
  return answers.map((a) => a.address);
}

function isNotFound(err: unknown): boolean {
  if (err instanceof Deno.errors.NotFound) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ENOTFOUND" || code === "ENODATA" || code === "EAI_NONAME" ||
    code === "EAI_NODATA";
}

/** Creates the caching system resolver. */
export function createSystemResolver(opts: SystemResolverOptions): Resolver {
  const { clock, log } = opts;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const rawLookup = opts.lookup ?? systemLookup;
  const nameServer = opts.nameServer;
  const rawSrv: SrvFn = opts.resolveSrv ??
    ((name, signal) =>
      Deno.resolveDns(name, "SRV", nameServer ? { nameServer, signal } : { signal }));
  const addresses = new LruCache<string, Entry<string[]>>(opts.maxEntries);
  const srvs = new LruCache<string, Entry<SrvRecord[]>>(opts.maxEntries);
  const addressFlights = new InFlight<string, string[]>();
  const srvFlights = new InFlight<string, SrvRecord[]>();

  /** Runs `query` with the per-query timeout; maps failures onto DnsError. */
  async function timed<T>(what: string, query: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    const timer = clock.setTimer(timeoutMs, () => ac.abort());
    const timeout = new Promise<never>((_, reject) =>
      ac.signal.addEventListener(
        "abort",
        () => reject(new DnsError("timeout", `DNS query for ${what} timed out`)),
        { once: true },
      )
    );
    const attempt = query(ac.signal);
    attempt.catch(() => {});
    try {
      return await Promise.race([attempt, timeout]);
    } catch (err) {
      if (err instanceof DnsError) throw err;
      if (isNotFound(err)) throw new DnsError("not_found", `no DNS records for ${what}`);
      throw new DnsError("failure", `DNS query for ${what} failed: ${describeError(err)}`);
    } finally {
      timer.cancel();
    }
  }

  function cached<T>(
    cache: LruCache<string, Entry<T>>,
    key: string,
  ): Entry<T> | undefined {
    const entry = cache.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > clock.monotonic()) return entry;
    cache.delete(key);
    return undefined;
  }

  return {
    lookup(host, signal) {
      const literal = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
      if (parseIp(literal)) return Promise.resolve([literal]);
      const key = host.toLowerCase().replace(/\.$/, "");
      const hit = cached(addresses, key);
      if (hit?.error) return Promise.reject(hit.error);
      if (hit?.value) return Promise.resolve([...hit.value]);
      const shared = addressFlights.run(key, async () => {
        try {
          const found = await timed(key, () => rawLookup(key));
          const unique = [...new Set(found)];
          if (unique.length === 0) throw new DnsError("not_found", `no DNS records for ${key}`);
          addresses.set(key, {
            value: unique,
            error: undefined,
            expiresAt: clock.monotonic() + ADDRESS_TTL_MS,
          });
          return unique;
        } catch (err) {
          const dnsErr = err instanceof DnsError
            ? err
            : new DnsError("failure", `DNS query for ${key} failed`);
          if (dnsErr.code === "not_found") {
            addresses.set(key, {
              value: undefined,
              error: dnsErr,
              expiresAt: clock.monotonic() + NEGATIVE_TTL_MS,
            });
          } else log.debug("DNS lookup failed", { host: key, error: dnsErr.message });
          throw dnsErr;
        }
      });
      return raceSignal(shared, signal).then((v) => [...v]);
    },

    srv(name, signal) {
      const key = name.toLowerCase().replace(/\.$/, "");
      const hit = cached(srvs, key);
      if (hit?.value) return Promise.resolve(hit.value.map((r) => ({ ...r })));
      const shared = srvFlights.run(key, async () => {
        let records: SrvRecord[];
        try {
          const raw = await timed(`SRV ${key}`, (s) => rawSrv(key, s));
          records = raw.map((r) => ({
            priority: r.priority,
            weight: r.weight,
            port: r.port,
            target: r.target.endsWith(".") ? r.target.slice(0, -1) : r.target,
          }));
        } catch (err) {
          if (err instanceof DnsError && err.code === "not_found") records = [];
          else {
            log.debug("SRV query failed", { name: key, error: describeError(err) });
            throw err;
          }
        }
        srvs.set(key, {
          value: records,
          error: undefined,
          expiresAt: clock.monotonic() + (records.length > 0 ? SRV_TTL_MS : NEGATIVE_TTL_MS),
        });
        return records;
      });
      return raceSignal(shared, signal).then((v) => v.map((r) => ({ ...r })));
    },
  };
}
