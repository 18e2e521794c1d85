/**
 * What the HTTP handlers need from the rest of the service, declared by the consumer so the
 * handlers depend on capabilities, not on implementations (and tests pass small stand-ins).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Config } from "../config/config.ts";
import type { LiveKitRoomAlias, OpenIdAccessToken, ServerName, UserId } from "../ids.ts";
import type { Logger } from "../log.ts";
import type { RateLimiter } from "../policy/rate_limit.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import type { DelegationRequest } from "../delegation/ports.ts";
import type { AppServiceRoutes } from "../appservice/routes.ts";
import type { TokenTracker } from "../appservice/ports.ts";

export type { DelegationRequest };

/** OpenID verification (openid-and-discovery.md §1); rejects with the reason on failure. */
export interface TokenVerifier {
  verify(input: {
    serverName: ServerName;
    accessToken: OpenIdAccessToken;
    signal?: AbortSignal;
    expiresInSeconds?: number;
  }): Promise<UserId>;
}

/** Client-server API discovery (openid-and-discovery.md §9). */
export interface CsApiLookup {
  resolve(
    serverName: ServerName,
    signal?: AbortSignal,
  ): Promise<{ baseUrl: string; guarded: boolean } | undefined>;
}

/** Room creation for full-access users (tokens-and-rooms.md §6.5). */
export interface RoomEnsurer {
  ensureRoom(room: LiveKitRoomAlias): Promise<{ shared: boolean }>;
}

/** Job registration and the webhook receiver (delegation.md). */
export interface DelegationPort {
  register(req: DelegationRequest): Promise<void>;
  handleWebhook(req: Request): Promise<Response>;
}

/** Everything the request handlers use. */
export interface AppDeps {
  config: Config;
  clock: Clock;
  log: Logger;
  verifier: TokenVerifier;
  csApi: CsApiLookup;
  rooms: RoomEnsurer;
  delegation: DelegationPort;
  limits: { ip: RateLimiter; server: RateLimiter; user: RateLimiter };
  metrics: ServiceMetrics;
  /** True once graceful shutdown started (http-api.md §1). */
  shuttingDown: () => boolean;
  /** The app-service paths, when app-service mode is on (app-service.md §4). */
  appService?: AppServiceRoutes;
  /**
   * App-service mode: learns about tokens the standalone endpoints mint for users of
   * `LIVEKIT_HS_SERVER_NAME`, so membership enforcement covers them too (app-service.md §8).
   */
  tokens?: TokenTracker;
}
