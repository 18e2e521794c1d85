/**
 * Wiring of replica mode (`LIVEKIT_REPLICAS=true`, replicas.md) into delegation: the job writes
 * that record ownership, a second Redis connection for blocking stream reads, and the
 * coordinator (lease, takeover, signals). Delegation's set-up calls {@linkcode createReplicaMode}
 * before building the job manager (which writes through `writes`) and `attach` after.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import type { ReplicaSettings } from "../config/replicas.ts";
import type { RedisConnection } from "../store/redis_connection.ts";
import { ReplicaCoordinator } from "./coordinator.ts";
import { ReplicaWrites } from "./store.ts";
import type { ReplicaHost } from "./takeover.ts";

export type { ReplicaCoordinator, ReplicaStatus } from "./coordinator.ts";

/** Options of {@linkcode createReplicaMode}. */
export interface ReplicaModeOptions {
  settings: ReplicaSettings;
  /** The shared Redis connection (also used for the job writes). */
  connection: RedisConnection;
  clock: Clock;
  log: Logger;
  metrics?: ServiceMetrics;
  /** A Redis command failed (metrics). */
  onError?: (op: string) => void;
}

/** Replica mode before and after the job manager exists. */
export interface ReplicaMode {
  readonly id: string;
  readonly writes: ReplicaWrites;
  /** Starts coordination for the manager's jobs; returns the coordinator. */
  attach(host: ReplicaHost): ReplicaCoordinator;
}

/** `<n>` random hex digits from the injected clock. */
export function randomHex(clock: Clock, n: number): string {
  let out = "";
  while (out.length < n) out += Math.floor(clock.random() * 0x10000).toString(16).padStart(4, "0");
  return out.slice(0, n);
}

/** Builds replica mode; nothing talks to Redis until `attach(…).start()`. */
export function createReplicaMode(options: ReplicaModeOptions): ReplicaMode {
  const { settings, connection, clock, metrics } = options;
  const id = settings.id ?? `lk-jwt-${randomHex(clock, 8)}`;
  const log = options.log.child({ replica: id });
  const blocking = connection.duplicate();
  let coordinator: ReplicaCoordinator | undefined;
  const writes = new ReplicaWrites({
    id,
    command: (args, timeoutMs) => connection.command(args, timeoutMs),
    clock,
    log,
    onLost: (field) => {
      coordinator?.lost(field);
    },
    onTookFrom: (field, previous) => {
      log.info("Registration took the job over from another replica", { field, previous });
    },
    onError: options.onError,
    close: async () => {
      await blocking.close();
      await connection.close();
    },
  });
  return {
    id,
    writes,
    attach(host) {
      coordinator = new ReplicaCoordinator({
        id,
        token: randomHex(clock, 32),
        ttlMs: settings.ttlMs,
        command: (args, timeoutMs) => connection.command(args, timeoutMs),
        blocking: (args, timeoutMs) => blocking.command(args, timeoutMs),
        host,
        writes,
        clock,
        log,
        metrics,
      });
      blocking.connect();
      return coordinator;
    },
  };
}
