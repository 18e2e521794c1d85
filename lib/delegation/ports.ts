/**
 * The capabilities delegation jobs need from the rest of the service (delegation.md §4, §6, §7),
 * gathered in one place so the delegation modules name what they depend on, and the types this
 * module offers to the HTTP handlers and `main.ts`.
 *
 * @module
 */
import type { DelayId, LiveKitIdentity, LiveKitRoomAlias, ServerName, UserId } from "../ids.ts";

export type { ParticipantLookup, Presence } from "../livekit/room_service.ts";
export type { CsApiBase, CsApiResolver } from "../matrix/cs_api.ts";
export type {
  Outbound,
  OutboundFailure,
  OutboundRequest,
  OutboundResponse,
  RedirectPolicy,
} from "../net/outbound.ts";

/** A delegation to register (delegation.md §2). */
export interface DelegationRequest {
  serverName: ServerName;
  delayId: DelayId;
  delayTimeoutMs: number;
  room: LiveKitRoomAlias;
  identity: LiveKitIdentity;
  userId: UserId;
  /**
   * App-service mode: the Matrix user the service acts as for restart/send (with the as_token
   * and `?user_id=`), persisted with the job (app-service.md §5.3). Absent for standalone jobs.
   */
  appServiceUser?: UserId;
}

/** Live jobs and store health, for readiness and metrics. */
export interface DelegationStatus {
  jobs: number;
  byState: Record<string, number>;
  redis: "disabled" | "connected" | "unavailable";
  restoreDone: boolean;
  /** Replica mode only (replicas.md R9): id, whether the lease is held, live replicas. */
  replica?: { id: string; lease: boolean; peers: number };
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
  /**
   * The Redis connection of the job store, when Redis is configured: membership enforcement
   * keeps its hash on it (app-service.md §8). Closed by {@linkcode Delegation.shutdown}.
   */
  redis?: { command(args: string[]): Promise<unknown> };
}
