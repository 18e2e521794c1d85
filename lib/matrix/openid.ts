/**
 * OpenID token verification over federation (openid-and-discovery.md §1, §5, §6).
 *
 * One verification: parse the server name, resolve its destinations (lib/matrix/federation.ts)
 * or use its `LIVEKIT_FEDERATION_URL_OVERRIDES` entry, then send exactly one
 * `GET /_matrix/federation/v1/openid/userinfo?access_token=…` to the first destination that
 * answers (only transport failures move on), and check `sub`. Every failure is an
 * {@linkcode OpenIdError} carrying the stage, server name and destination so the caller can log
 * why (the access token and the userinfo URL are never part of it).
 *
 * Limits: 30 s per verification (discovery included), 10 s per userinfo request, connect 5 s
 * (outbound client), 64 KiB bodies, at most 128 verifications in flight (others wait within
 * their budget). Results are cached by (server name, SHA-256 of the token): successes for at
 * most 10 min and never beyond the token's `expires_in`, failures for 10 s; concurrent
 * identical verifications share one outbound request.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Clock } from "../clock.ts";
import { type OpenIdAccessToken, type ServerName, type UserId, userId } from "../ids.ts";
import type { Logger } from "../log.ts";
import { type Outbound, OutboundError, type OutboundFailure, redactUrl } from "../net/outbound.ts";
import { InFlight, LruCache, raceSignal } from "./cache.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import { type Destination, DiscoveryError, type FederationDiscovery } from "./federation.ts";
import { parseServerName } from "./server_name.ts";
import { Semaphore } from "../semaphore.ts";

/**
 * Where a verification failed (the WARN log line names it). A failed `.well-known` lookup is not
 * fatal by itself (resolution falls back to SRV and A/AAAA, §3); when nothing is found the stage
 * is `dns` and the message names the well-known outcome. Caller aborts map to `timeout`.
 */
export type OpenIdStage =
  | "parse"
  | "well-known"
  | "dns"
  | "connect"
  | "tls"
  | "timeout"
  | "status"
  | "body"
  | "sub mismatch"
  | "destination not allowed";

/** A failed verification. Never contains the access token or the userinfo URL. */
export class OpenIdError extends Error {
  readonly stage: OpenIdStage;
  readonly serverName: string;
  /** `address:port` or the override base URL that failed last. */
  readonly destination?: string;
  /** HTTP status for stage `status`. */
  readonly status?: number;

  constructor(
    stage: OpenIdStage,
    message: string,
    details: { serverName: string; destination?: string; status?: number },
  ) {
    super(message);
    this.name = "OpenIdError";
    this.stage = stage;
    this.serverName = details.serverName;
    if (details.destination !== undefined) this.destination = details.destination;
    if (details.status !== undefined) this.status = details.status;
  }

  /** `status <n>` for HTTP errors, else the stage (the log field of §1). */
  get reason(): string {
    return this.stage === "status" && this.status !== undefined
      ? `status ${this.status}`
      : this.stage;
  }
}

/** Verifies OpenID tokens. */
export interface OpenIdVerifier {
  /** The verified user ID; rejects with {@linkcode OpenIdError}. */
  verify(input: {
    serverName: ServerName;
    accessToken: OpenIdAccessToken;
    signal?: AbortSignal;
    /** `openid_token.expires_in`, bounds the cache lifetime of a success. */
    expiresInSeconds?: number;
  }): Promise<UserId>;
}

/** Options of {@linkcode createOpenIdVerifier}. */
export interface OpenIdVerifierOptions {
  outbound: Outbound;
  discovery: FederationDiscovery;
  federationOverrides: ReadonlyMap<string, string>;
  clock: Clock;
  log: Logger;
  /** Verifications in flight, default 128. */
  maxConcurrent?: number;
  maxEntries?: number;
  /** Counts cache hits, misses and coalesced verifications. */
  metrics?: Pick<ServiceMetrics, "openidCache">;
}

const VERIFY_BUDGET_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_BODY = 64 * 1024;
const SUCCESS_TTL_MS = 10 * 60_000;
const FAILURE_TTL_MS = 10_000;
const USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo";
/** One strict decoder for every userinfo body (a decoder per answer was garbage on the cold path). */
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

type CacheEntry = { expiresAt: number; user?: UserId; error?: OpenIdError };

const STAGE_OF: Record<OutboundFailure, OpenIdStage> = {
  dns: "dns",
  connect: "connect",
  tls: "tls",
  timeout: "timeout",
  blocked: "destination not allowed",
  too_large: "body",
  redirect: "status",
  aborted: "timeout",
  other: "connect",
};

/** Failures after which the next destination is tried (§3 "Trying destinations"). */
const TRANSPORT: ReadonlySet<OutboundFailure> = new Set([
  "dns",
  "connect",
  "tls",
  "timeout",
  "blocked",
  "other",
]);

/**
 * The `sub` check of §6: starts with `@`, and everything after the first `:` equals the server
 * name byte for byte.
 */
export function subMatchesServer(sub: string, serverName: string): boolean {
  const colon = sub.indexOf(":");
  return sub.startsWith("@") && colon > 1 && sub.slice(colon + 1) === serverName;
}

/** Creates the verifier. */
export function createOpenIdVerifier(opts: OpenIdVerifierOptions): OpenIdVerifier {
  const { outbound, discovery, federationOverrides, clock, log } = opts;
  const cache = new LruCache<string, CacheEntry>(opts.maxEntries);
  const flights = new InFlight<string, UserId>();
  const slots = new Semaphore(opts.maxConcurrent ?? 128);

  function parseUserinfo(
    body: Uint8Array,
    serverName: string,
    destination: string,
  ): UserId {
    let doc: unknown;
    try {
      doc = JSON.parse(STRICT_UTF8.decode(body));
    } catch {
      throw new OpenIdError("body", `userinfo answer from ${destination} is not JSON`, {
        serverName,
        destination,
      });
    }
    const sub = typeof doc === "object" && doc !== null && !Array.isArray(doc)
      ? (doc as Record<string, unknown>).sub
      : undefined;
    if (typeof sub !== "string") {
      throw new OpenIdError("body", `userinfo answer from ${destination} has no string sub`, {
        serverName,
        destination,
      });
    }
    if (!subMatchesServer(sub, serverName)) {
      throw new OpenIdError(
        "sub mismatch",
        `userinfo sub ${JSON.stringify(sub)} does not belong to ${serverName}`,
        { serverName, destination },
      );
    }
    return userId(sub);
  }

  async function callUserinfo(
    serverName: string,
    target: { url: string; destination: string; dest?: Destination },
    signal: AbortSignal,
  ): Promise<UserId> {
    const res = await outbound.request({
      url: target.url,
      timeoutMs: REQUEST_TIMEOUT_MS,
      maxBodyBytes: MAX_BODY,
      ...(target.dest
        ? {
          guard: { serverName },
          connectTo: {
            address: target.dest.address,
            port: target.dest.port,
            host: target.dest.resolvedName ?? target.dest.tlsName,
          },
        }
        : {}),
      signal,
    });
    if (res.status < 200 || res.status > 299) {
      throw new OpenIdError(
        "status",
        `userinfo request to ${target.destination} answered ${res.status}`,
        { serverName, destination: target.destination, status: res.status },
      );
    }
    return parseUserinfo(res.body, serverName, target.destination);
  }

  function fromOutbound(err: OutboundError, serverName: string, destination: string): OpenIdError {
    return new OpenIdError(
      STAGE_OF[err.kind],
      `userinfo request to ${destination}: ${err.message}`,
      {
        serverName,
        destination,
      },
    );
  }

  async function run(serverName: string, token: string, signal: AbortSignal): Promise<UserId> {
    if (!parseServerName(serverName)) {
      throw new OpenIdError("parse", "invalid server name", { serverName });
    }
    const query = `?access_token=${encodeURIComponent(token)}`;
    const override = federationOverrides.get(serverName);
    if (override !== undefined) {
      const base = override.replace(/\/+$/, "");
      const destination = redactUrl(base);
      try {
        return await callUserinfo(
          serverName,
          { url: `${base}${USERINFO_PATH}${query}`, destination },
          signal,
        );
      } catch (err) {
        if (err instanceof OutboundError) throw fromOutbound(err, serverName, destination);
        throw err;
      }
    }
    let destinations: Destination[];
    try {
      destinations = await discovery.resolve(serverName, signal);
    } catch (err) {
      if (err instanceof DiscoveryError) {
        throw new OpenIdError(err.stage, err.message, { serverName });
      }
      if (signal.aborted) {
        throw new OpenIdError("timeout", "verification timed out", { serverName });
      }
      throw new OpenIdError("dns", `discovery failed: ${String(err)}`, { serverName });
    }
    let last: OpenIdError | undefined;
    for (const dest of destinations) {
      const hostPart = dest.address.includes(":") ? `[${dest.address}]` : dest.address;
      const destination = `${hostPart}:${dest.port}`;
      try {
        return await callUserinfo(
          serverName,
          { url: `https://${dest.hostHeader}${USERINFO_PATH}${query}`, destination, dest },
          signal,
        );
      } catch (err) {
        if (!(err instanceof OutboundError)) throw err;
        last = fromOutbound(err, serverName, destination);
        if (!TRANSPORT.has(err.kind) || signal.aborted) throw last;
        log.debug("userinfo destination failed", {
          server_name: serverName,
          destination,
          stage: last.stage,
          error: err.message,
        });
      }
    }
    throw last ?? new OpenIdError("dns", `no destination for ${serverName}`, { serverName });
  }

  async function verifyShared(serverName: string, token: string, key: string): Promise<UserId> {
    const ac = new AbortController();
    const timer = clock.setTimer(VERIFY_BUDGET_MS, () => ac.abort());
    let release: (() => void) | undefined;
    try {
      release = await slots.acquire(ac.signal);
      return await run(serverName, token, ac.signal);
    } catch (err) {
      const error = err instanceof OpenIdError
        ? err
        : new OpenIdError("timeout", "verification timed out", { serverName });
      cache.set(key, { expiresAt: clock.monotonic() + FAILURE_TTL_MS, error });
      throw error;
    } finally {
      release?.();
      timer.cancel();
    }
  }

  return {
    async verify({ serverName, accessToken, signal, expiresInSeconds }) {
      const token = accessToken.reveal();
      const digest = createHash("sha256").update(token).digest("hex");
      const key = `${serverName}\n${digest}`;
      const hit = cache.get(key);
      if (hit && hit.expiresAt > clock.monotonic()) {
        opts.metrics?.openidCache.inc({ result: "hit" });
        if (hit.user !== undefined) return hit.user;
        if (hit.error) throw hit.error;
      }
      opts.metrics?.openidCache.inc({ result: flights.has(key) ? "coalesced" : "miss" });
      const shared = flights.run(key, async () => {
        const user = await verifyShared(serverName, token, key);
        let ttl = SUCCESS_TTL_MS;
        if (expiresInSeconds !== undefined && Number.isFinite(expiresInSeconds)) {
          ttl = Math.min(ttl, expiresInSeconds * 1000);
        }
        if (ttl > 0) cache.set(key, { expiresAt: clock.monotonic() + ttl, user });
        return user;
      });
      try {
        return await raceSignal(shared, signal);
      } catch (err) {
        if (err instanceof OpenIdError) throw err;
        throw new OpenIdError("timeout", "verification aborted", { serverName });
      }
    },
  };
}
