/**
 * Wiring of membership enforcement (app-service.md §8) in app-service mode: the enforcer, its
 * Redis hash on the job store's connection when Redis is configured, and the sweep timer.
 *
 * A single instance reads the hash once at start. With several replicas on one Redis
 * (`LIVEKIT_REPLICAS=true`, replicas.md) every replica reads the whole hash at each sweep and so
 * checks every tracked room: checks are repeated per replica, and removals are
 * idempotent ("not found" is success), which is cheaper than coordinating who sweeps what.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { AppServiceConfig, Config } from "../config/config.ts";
import type { Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import type { HomeserverClient } from "../appservice/homeserver.ts";
import { MembershipEnforcer, type SfuActions } from "./enforcer.ts";
import { ParticipantStore, type RedisCommands } from "./store.ts";

/** Options of {@linkcode startMembership}. */
export interface StartMembershipOptions {
  config: Pick<Config, "jwtValiditySeconds" | "replica">;
  appService: Pick<AppServiceConfig, "serverName" | "membershipCheckIntervalMs">;
  homeserver: Pick<HomeserverClient, "isJoined">;
  sfu: SfuActions;
  /** The job store's Redis connection, when Redis is configured. */
  redis?: RedisCommands;
  clock: Clock;
  log: Logger;
  metrics?: ServiceMetrics;
}

/** Builds and starts the enforcer (the stored entries load in the background). */
export function startMembership(options: StartMembershipOptions): MembershipEnforcer {
  const { log, metrics } = options;
  const enforcer = new MembershipEnforcer({
    serverName: options.appService.serverName,
    homeserver: options.homeserver,
    sfu: options.sfu,
    clock: options.clock,
    log,
    metrics,
    store: options.redis
      ? new ParticipantStore(options.redis, {
        log,
        onError: () => metrics?.membershipFailures.inc({ op: "redis" }),
      })
      : undefined,
    sharedStore: options.config.replica !== undefined,
    intervalMs: options.appService.membershipCheckIntervalMs,
    tokenValidityMs: options.config.jwtValiditySeconds * 1000,
  });
  void enforcer.start();
  return enforcer;
}
