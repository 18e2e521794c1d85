/**
 * What the app-service endpoints need from the rest of the service, declared by the consumer
 * (capabilities, not implementations).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { AppServiceConfig, Config } from "../config/config.ts";
import type { Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import type { DelegationPort, RoomEnsurer } from "../http/ports.ts";
import type { HomeserverClient } from "./homeserver.ts";
import type { MembershipSink, TokenTracker } from "./ports.ts";

/** Everything the app-service handlers use. */
export interface AppServiceDeps {
  config: Pick<Config, "livekitUrl" | "livekitKey" | "livekitSecret" | "jwtValiditySeconds">;
  appService: AppServiceConfig;
  clock: Clock;
  log: Logger;
  metrics: ServiceMetrics;
  homeserver: HomeserverClient;
  rooms: RoomEnsurer;
  delegation: Pick<DelegationPort, "register">;
  membership: MembershipSink;
  tokens: TokenTracker;
  shuttingDown: () => boolean;
}
