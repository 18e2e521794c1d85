/**
 * Calls to the own homeserver as its application service (app-service.md §6): the MSC4502
 * membership query `is_joined`, the MSC4140 delayed-event look-up as a user, the MSC4512
 * federation relay `fed_proxy`, and (for `check-config`) `whoami` and the ping.
 *
 * Every call goes through the shared {@linkcode Outbound} client to the homeserver's
 * client-server API (`LIVEKIT_CS_API_URL_OVERRIDES[<server name>]` or client discovery of
 * `LIVEKIT_HS_SERVER_NAME`, never a user-chosen destination), with `Authorization: Bearer
 * <as_token>`, a 10 s deadline and a 64 KiB response cap. The as_token is never logged: log
 * lines and errors show URLs without their query and never a header.
 *
 * `is_joined`: concurrent identical questions share one call; a `true` answer is reused for at
 * most {@linkcode IS_JOINED_CACHE_MS}, a `false` one never (a user who just joined must not be
 * refused). {@linkcode HomeserverClient.forgetJoined} drops cached answers; a `fresh` question
 * uses neither the cache nor a question already in flight (membership enforcement asks afresh
 * when it has just seen a membership change, app-service.md §8).
 *
 * Answers that mean "Synapse is not set up for this service" — a `403` for the missing
 * `io.element.msc4502.scopes` entry, an `M_UNRECOGNIZED` for a disabled experimental feature,
 * `M_UNKNOWN_TOKEN` for an as_token Synapse does not know, a user outside the registration's
 * namespace — become {@linkcode HomeserverError}s with a `hint` naming the setting to change,
 * logged as ERROR at most once a minute per kind.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { AppServiceConfig } from "../config/config.ts";
import type { UserId } from "../ids.ts";
import type { Logger } from "../log.ts";
import { InFlight, LruCache, raceSignal } from "../matrix/cache.ts";
import type { CsApiResolver } from "../matrix/cs_api.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import { type Outbound, OutboundError } from "../net/outbound.ts";
import { encodeDelayIdSegment } from "../delegation/homeserver.ts";
import { IS_JOINED_SCOPE } from "../config/app_service.ts";

/** Deadline of each call (app-service.md §6). */
export const HOMESERVER_TIMEOUT_MS = 10_000;
/** Response cap of each call. */
export const HOMESERVER_MAX_BODY = 64 * 1024;
/** Longest reuse of a `true` `is_joined` answer (app-service.md §6). */
export const IS_JOINED_CACHE_MS = 5_000;
/** At most one ERROR line per configuration problem kind in this period. */
const CONFIG_LOG_PERIOD_MS = 60_000;

/** The homeserver calls, as metric label values. */
export type HomeserverCall = "is_joined" | "delayed_event" | "fed_proxy" | "ping" | "whoami";

/** Why a homeserver call failed. */
export type HomeserverFailure =
  | "unauthorized"
  | "forbidden"
  | "unrecognized"
  | "status"
  | "transport"
  | "timeout"
  | "bad_response"
  | "unresolved";

/** A failed homeserver call; `hint` names the setting to change when it is a setup problem. */
export class HomeserverError extends Error {
  constructor(
    readonly call: HomeserverCall,
    readonly kind: HomeserverFailure,
    message: string,
    readonly details: { status?: number; errcode?: string; hint?: string } = {},
  ) {
    super(message);
    this.name = "HomeserverError";
  }

  get hint(): string | undefined {
    return this.details.hint;
  }
}

/** Whose membership `is_joined` asks about. */
export type JoinedQuery = { mxid: string } | { serverName: string };

/** A pending delayed event as the homeserver shows it to its owner. */
export interface DelayedEventInfo {
  roomId: string;
  /** `delay_ms` (or the older `delay`), when a positive integer. */
  delayMs: number | undefined;
  type: string | undefined;
}

/** The outcome of a federation relay (`fed_proxy` answered 200). */
export interface RelayAnswer {
  /** The remote server's HTTP status. */
  status: number;
  /** The remote server's JSON body (null when it was not JSON). */
  content: unknown;
}

/** The client. */
export interface HomeserverClient {
  /**
   * `options.fresh`: neither a cached answer nor a question already in flight is used (a
   * membership change was just seen, app-service.md §8); the answer still refreshes the cache.
   */
  isJoined(
    roomId: string,
    who: JoinedQuery,
    signal?: AbortSignal,
    options?: { fresh?: boolean },
  ): Promise<boolean>;
  /** Drops cached `true` answers for a room (and one user, or every user and server). */
  forgetJoined(roomId: string, mxid?: string): void;
  /** The user's own pending delayed event, or undefined when the homeserver answers 404. */
  delayedEvent(
    delayId: string,
    user: UserId,
    signal?: AbortSignal,
  ): Promise<DelayedEventInfo | undefined>;
  /** `POST` relayed over federation by the homeserver (MSC4512 `fed_proxy`). */
  fedProxy(
    req: { destination: string; path: string; body: Record<string, unknown> },
    signal?: AbortSignal,
  ): Promise<RelayAnswer>;
  /** The user the as_token authenticates (the registration's sender). */
  whoami(signal?: AbortSignal): Promise<string>;
  /** Asks the homeserver to ping this service (`POST /_matrix/client/v1/appservice/{id}/ping`). */
  ping(id: string, transactionId: string, signal?: AbortSignal): Promise<number>;
}

/** Options of {@linkcode createHomeserverClient}. */
export interface HomeserverClientOptions {
  outbound: Outbound;
  csApi: CsApiResolver;
  appService: Pick<AppServiceConfig, "serverName" | "asToken">;
  clock: Clock;
  log: Logger;
  metrics?: Pick<ServiceMetrics, "homeserverCalls" | "homeserverDuration" | "isJoinedCache">;
  maxCacheEntries?: number;
}

interface Answer {
  status: number;
  doc: unknown;
}

function errcodeOf(doc: unknown): string | undefined {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const code = (doc as Record<string, unknown>).errcode;
  return typeof code === "string" ? code : undefined;
}

function record(doc: unknown): Record<string, unknown> | undefined {
  return typeof doc === "object" && doc !== null && !Array.isArray(doc)
    ? doc as Record<string, unknown>
    : undefined;
}

function parseJson(body: Uint8Array): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return undefined;
  }
}

const FEATURE: Record<HomeserverCall, string> = {
  is_joined: "experimental_features.msc4502_enabled: true",
  fed_proxy: "experimental_features.msc4512_enabled: true",
  delayed_event: "max_event_delay_duration (MSC4140 delayed events)",
  ping: "a Synapse with the application-service ping endpoint (1.84 or later)",
  whoami: "a homeserver client-server API at this address",
};

/**
 * The error for a non-2xx answer, with the setting that fixes it when the answer says Synapse
 * is not set up for this service.
 */
export function classifyAnswer(
  call: HomeserverCall,
  answer: Answer,
  serverName: string,
): HomeserverError {
  const { status, doc } = answer;
  const errcode = errcodeOf(doc);
  const error = typeof record(doc)?.error === "string" ? record(doc)!.error as string : "";
  const base = `homeserver answered ${call} with ${status}${errcode ? ` ${errcode}` : ""}`;
  if (status === 401 || errcode === "M_UNKNOWN_TOKEN" || errcode === "M_MISSING_TOKEN") {
    return new HomeserverError(call, "unauthorized", base, {
      status,
      errcode,
      hint: "Synapse does not accept the as_token: LIVEKIT_AS_TOKEN (or the registration file " +
        "in LIVEKIT_AS_REGISTRATION_FILE) must be the as_token of a file listed in Synapse's " +
        "app_service_config_files, and LIVEKIT_CS_API_URL_OVERRIDES / LIVEKIT_HS_SERVER_NAME " +
        "must point at that Synapse",
    });
  }
  if ((status === 404 || status === 405) && errcode === "M_UNRECOGNIZED") {
    return new HomeserverError(call, "unrecognized", base, {
      status,
      errcode,
      hint: `the homeserver does not serve this endpoint: set ${FEATURE[call]} in homeserver.yaml`,
    });
  }
  if (status === 403 && call === "is_joined") {
    return new HomeserverError(call, "forbidden", base, {
      status,
      errcode,
      hint: `the registration lacks the membership scope: add io.element.msc4502.scopes: ` +
        `["${IS_JOINED_SCOPE}"] to the registration file and restart Synapse`,
    });
  }
  if (status === 403 && /masquerade|not registered this user/i.test(error)) {
    return new HomeserverError(call, "forbidden", base, {
      status,
      errcode,
      hint: "the registration must claim the local users: namespaces.users: [{regex: " +
        `'@.*:${serverName.replaceAll(".", "\\\\.")}', exclusive: false}]`,
    });
  }
  if (status === 400 && errcode?.endsWith("M_FEDPROXY_NO_PROXY_PREFIX")) {
    return new HomeserverError(call, "forbidden", base, {
      status,
      errcode,
      hint: "the registration needs io.element.msc4512.proxy_prefix: rtc/livekit and " +
        "io.element.msc4512.proxy_url",
    });
  }
  if (status === 403) return new HomeserverError(call, "forbidden", base, { status, errcode });
  return new HomeserverError(call, "status", base, { status, errcode });
}

/** Creates the client. */
export function createHomeserverClient(options: HomeserverClientOptions): HomeserverClient {
  const { outbound, csApi, appService, clock, log, metrics } = options;
  const serverName = appService.serverName;
  const joinedFlights = new InFlight<string, boolean>();
  const joinedCache = new LruCache<string, number>(options.maxCacheEntries);
  const lastConfigLog = new Map<string, number>();

  function reportSetupProblem(err: HomeserverError): void {
    if (!err.hint) return;
    const key = `${err.call} ${err.kind}`;
    const now = clock.monotonic();
    const last = lastConfigLog.get(key);
    if (last !== undefined && now - last < CONFIG_LOG_PERIOD_MS) return;
    lastConfigLog.set(key, now);
    log.error("Homeserver is not set up for app-service mode", {
      call: err.call,
      status: err.details.status,
      errcode: err.details.errcode,
      fix: err.hint,
    });
  }

  async function request(
    call: HomeserverCall,
    init: { method: "GET" | "POST"; path: string; query?: Record<string, string>; body?: unknown },
    signal: AbortSignal | undefined,
  ): Promise<Answer> {
    const started = clock.monotonic();
    let outcome = "ok";
    try {
      let base;
      try {
        base = await csApi.resolve(serverName, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        base = undefined;
      }
      if (!base) {
        outcome = "unresolved";
        throw new HomeserverError(
          call,
          "unresolved",
          `cannot find the client-server API of ${serverName}`,
          {
            hint: `set LIVEKIT_CS_API_URL_OVERRIDES=${serverName}=<Synapse client API URL> or ` +
              `publish m.homeserver.base_url in https://${serverName}/.well-known/matrix/client`,
          },
        );
      }
      const query = init.query ? `?${new URLSearchParams(init.query)}` : "";
      let res;
      try {
        res = await outbound.request({
          url: `${base.baseUrl}${init.path}${query}`,
          method: init.method,
          headers: {
            "Authorization": `Bearer ${appService.asToken.reveal()}`,
            ...(init.body === undefined ? {} : { "Content-Type": "application/json" }),
          },
          body: init.body === undefined ? undefined : JSON.stringify(init.body),
          timeoutMs: HOMESERVER_TIMEOUT_MS,
          maxBodyBytes: HOMESERVER_MAX_BODY,
          guard: base.guarded ? { serverName } : undefined,
          signal,
        });
      } catch (err) {
        const timeout = err instanceof OutboundError && err.kind === "timeout";
        outcome = timeout ? "timeout" : "transport";
        throw new HomeserverError(
          call,
          timeout ? "timeout" : "transport",
          err instanceof Error ? err.message : String(err),
        );
      }
      const answer = { status: res.status, doc: parseJson(res.body) };
      if (res.status < 200 || res.status > 299) {
        const err = classifyAnswer(call, answer, serverName);
        outcome = err.kind === "status" ? `status_${Math.floor(res.status / 100)}xx` : err.kind;
        if (!(call === "delayed_event" && res.status === 404 && err.kind === "status")) {
          reportSetupProblem(err);
          throw err;
        }
        outcome = "not_found";
      }
      return answer;
    } finally {
      metrics?.homeserverCalls.inc({ call, outcome });
      metrics?.homeserverDuration.observe({ call }, (clock.monotonic() - started) / 1000);
    }
  }

  function joinedKey(roomId: string, who: JoinedQuery): string {
    return "mxid" in who ? `${roomId}\0u\0${who.mxid}` : `${roomId}\0s\0${who.serverName}`;
  }

  async function askJoined(roomId: string, who: JoinedQuery): Promise<boolean> {
    const answer = await request("is_joined", {
      method: "GET",
      path: `/_matrix/client/unstable/io.element.msc4502/rooms/${
        encodeURIComponent(roomId)
      }/is_joined`,
      query: "mxid" in who ? { mxid: who.mxid } : { server_name: who.serverName },
    }, undefined);
    const joined = record(answer.doc)?.joined;
    if (typeof joined !== "boolean") {
      throw new HomeserverError("is_joined", "bad_response", "is_joined answer has no `joined`");
    }
    return joined;
  }

  return {
    isJoined(roomId, who, signal, options) {
      const key = joinedKey(roomId, who);
      if (options?.fresh) {
        joinedCache.delete(key);
        metrics?.isJoinedCache.inc({ result: "miss" });
        const asked = clock.monotonic();
        const fresh = askJoined(roomId, who).then((joined) => {
          if (joined) joinedCache.set(key, asked + IS_JOINED_CACHE_MS);
          return joined;
        });
        return raceSignal(fresh, signal);
      }
      const until = joinedCache.get(key);
      if (until !== undefined && clock.monotonic() < until) {
        metrics?.isJoinedCache.inc({ result: "hit" });
        return Promise.resolve(true);
      }
      if (until !== undefined) joinedCache.delete(key);
      metrics?.isJoinedCache.inc({ result: joinedFlights.has(key) ? "coalesced" : "miss" });
      const shared = joinedFlights.run(key, async () => {
        const asked = clock.monotonic();
        const joined = await askJoined(roomId, who);
        // Only `true` is kept, and only for the rest of the window from when it was asked.
        if (joined) joinedCache.set(key, asked + IS_JOINED_CACHE_MS);
        return joined;
      });
      return raceSignal(shared, signal);
    },

    forgetJoined(roomId, mxid) {
      if (mxid !== undefined) {
        joinedCache.delete(joinedKey(roomId, { mxid }));
        return;
      }
      joinedCache.clear();
    },

    async delayedEvent(delayId, user, signal) {
      const answer = await request("delayed_event", {
        method: "GET",
        path: `/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${
          encodeDelayIdSegment(delayId)
        }`,
        query: { user_id: user },
      }, signal);
      if (answer.status === 404) return undefined;
      const doc = record(answer.doc);
      if (!doc || typeof doc.room_id !== "string") {
        throw new HomeserverError("delayed_event", "bad_response", "delayed event has no room_id");
      }
      const raw = doc.delay_ms ?? doc.delay;
      const delayMs = typeof raw === "number" && Number.isSafeInteger(raw) && raw > 0
        ? raw
        : undefined;
      return {
        roomId: doc.room_id,
        delayMs,
        type: typeof doc.type === "string" ? doc.type : undefined,
      };
    },

    async fedProxy(req, signal) {
      const answer = await request("fed_proxy", {
        method: "POST",
        path: "/_matrix/client/unstable/io.element.msc4512/appservice/fed_proxy",
        body: { destination: req.destination, method: "POST", path: req.path, body: req.body },
      }, signal);
      const doc = record(answer.doc);
      const status = doc?.status;
      if (!doc || typeof status !== "number" || !Number.isInteger(status)) {
        throw new HomeserverError("fed_proxy", "bad_response", "fed_proxy answer has no status");
      }
      return { status, content: doc.content ?? null };
    },

    async whoami(signal) {
      const answer = await request("whoami", {
        method: "GET",
        path: "/_matrix/client/v3/account/whoami",
      }, signal);
      const user = record(answer.doc)?.user_id;
      if (typeof user !== "string") {
        throw new HomeserverError("whoami", "bad_response", "whoami answer has no user_id");
      }
      return user;
    },

    async ping(id, transactionId, signal) {
      const answer = await request("ping", {
        method: "POST",
        path: `/_matrix/client/v1/appservice/${encodeURIComponent(id)}/ping`,
        body: { transaction_id: transactionId },
      }, signal);
      const ms = record(answer.doc)?.duration_ms;
      return typeof ms === "number" ? ms : NaN;
    },
  };
}
