/**
 * The capabilities delegation jobs need from the rest of the service, declared by the consumer
 * (delegation.md §4, §6, §7). They are structurally identical to the exports of
 * `lib/livekit/room_service.ts`, `lib/matrix/cs_api.ts` and `lib/net/outbound.ts`, so the real
 * implementations plug in unchanged and tests pass small stand-ins.
 *
 * @module
 */
import type { DelayId, LiveKitIdentity, LiveKitRoomAlias, ServerName, UserId } from "../ids.ts";

/** Outcome of `GetParticipant` (tokens-and-rooms.md §6.6). */
export type Presence = "present" | "absent" | "unknown";

/** SFU presence lookup used by the participant lookup phases (delegation.md §7). */
export interface ParticipantLookup {
  getParticipant(
    room: LiveKitRoomAlias,
    identity: LiveKitIdentity,
    signal?: AbortSignal,
  ): Promise<Presence>;
}

/** A resolved client-server API base URL (openid-and-discovery.md §9). */
export interface CsApiBase {
  baseUrl: string;
  /** False for `LIVEKIT_CS_API_URL_OVERRIDES` entries (operator-vouched, no SSRF guard). */
  guarded: boolean;
}

/** Client-server API discovery, run again at action time (delegation.md §6). */
export interface CsApiResolver {
  resolve(serverName: ServerName, signal?: AbortSignal): Promise<CsApiBase | undefined>;
}

/** Why an outbound request failed before a usable response. */
export type OutboundFailure =
  | "dns"
  | "connect"
  | "tls"
  | "timeout"
  | "blocked"
  | "too_large"
  | "redirect"
  | "aborted"
  | "other";

/** Which redirects an outbound request may follow (openid-and-discovery.md §8.4). */
export interface RedirectPolicy {
  maxHops: number;
  httpsOnly: boolean;
  sameHostOnly: boolean;
  statuses: readonly number[];
}

/** One guarded, capped outbound HTTP request. */
export interface OutboundRequest {
  url: string;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  maxBodyBytes: number;
  redirect?: RedirectPolicy;
  guard?: { serverName: string };
  signal?: AbortSignal;
}

/** A complete response whose body was read within the cap. */
export interface OutboundResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  url: string;
}

/** Outbound HTTP with the safety rules of openid-and-discovery.md §8. */
export interface Outbound {
  request(req: OutboundRequest): Promise<OutboundResponse>;
  close(): Promise<void>;
}

/** A delegation to register (delegation.md §2). */
export interface DelegationRequest {
  serverName: ServerName;
  delayId: DelayId;
  delayTimeoutMs: number;
  room: LiveKitRoomAlias;
  identity: LiveKitIdentity;
  userId: UserId;
}

/** Live jobs and store health, for readiness and metrics. */
export interface DelegationStatus {
  jobs: number;
  byState: Record<string, number>;
  redis: "disabled" | "connected" | "unavailable";
  restoreDone: boolean;
}

/** What the HTTP handlers and `main.ts` call. */
export interface Delegation {
  /**
   * Validates T (≤ 9223372036854 ms) and the caps, replaces or creates the job, persists it
   * (waiting at most 2 s for the first Redis write) and starts it.
   *
   * @throws {import("../http/errors.ts").ApiError} 400 (timeout, caps) or 503 (shutting down),
   * exactly as http-api.md §9.1.
   */
  register(req: DelegationRequest): Promise<void>;
  /** The complete `/sfu_webhook` endpoint (http-api.md §11). */
  handleWebhook(req: Request): Promise<Response>;
  /** Graceful, bounded stop (delegation.md §12). */
  shutdown(): Promise<void>;
  /** Live jobs by state, Redis state and whether the restore ran. */
  status(): DelegationStatus;
}
