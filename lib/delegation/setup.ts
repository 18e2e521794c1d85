/**
 * Wiring of delegation (delegation.md §10.3, §10.4, §12): the store (Redis when
 * `LIVEKIT_REDIS_URL` is set, else in memory only), the job manager, the webhook endpoint, the
 * start-up restore and the shutdown sequence.
 *
 * Start-up with Redis: wait up to 5 s for the connection and a `PING`; on success restore
 * (bounded to 10 s) before returning, so the HTTP listener opens only after restored jobs are
 * live. On failure log ERROR `Could not connect Redis store: store: Redis ping failed: <cause>`
 * and return anyway; the client keeps reconnecting (1 s doubling to 30 s) and the restore runs
 * as soon as Redis answers, merged with the jobs created meanwhile.
 *
 * With `LIVEKIT_REPLICAS=true` (replicas.md) the jobs are written through replica mode
 * (`lib/replica/`), which also records ownership, and the restore is replica mode's: this
 * replica's own jobs once its lease is held (bounded by TTL + 10 s at start-up).
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { Config } from "../config/config.ts";
import { describeError, type Logger } from "../log.ts";
import { explainPermissionError } from "../permission_errors.ts";
import type { HashBackend } from "../store/backend.ts";
import { JobStore } from "../store/job_store.ts";
import type { RedisBackend } from "../store/redis.ts";
import { redisEndpoint } from "../config/redis_url.ts";
import { planRestore } from "../store/restore.ts";
import { JobManager, type JobWrites } from "./manager.ts";
import { encodeField } from "../store/codec.ts";
import type { ReplicaCoordinator, ReplicaMode } from "../replica/setup.ts";
import type {
  CsApiResolver,
  Delegation,
  DelegationStatus,
  Outbound,
  ParticipantLookup,
} from "./ports.ts";
import { createWebhookHandler, type WebhookHandlerOptions } from "./webhook.ts";
import { DelegationWatch } from "./watch.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";

/** How long start-up waits for Redis to answer `PING` (delegation.md §10.3). */
export const STARTUP_PING_MS = 5_000;
/** Bound of the restore (delegation.md §10.4). */
export const RESTORE_TIMEOUT_MS = 10_000;

/** Options of {@linkcode startDelegation}. */
export interface StartDelegationOptions {
  config: Config;
  outbound: Outbound;
  csApi: CsApiResolver;
  lookup: ParticipantLookup;
  clock: Clock;
  log: Logger;
  /** Replaces the Redis connection built from the config (tests). */
  backend?: HashBackend;
  /** Job timer coalescing (tests pass 0 for exact timings); default 20 ms. */
  timerResolutionMs?: number;
  /** Delegation metrics (restarts, sends, retries, webhooks, Redis errors). */
  metrics?: ServiceMetrics;
  /** Sees every verified webhook event (membership enforcement, app-service.md §8). */
  onWebhookEvent?: WebhookHandlerOptions["observe"];
}

/**
 * Starts delegation: connects Redis if configured and restores stored jobs before returning
 * (or later, when Redis was unreachable).
 *
 * @throws {TypeError} only for a Redis URL the config loader should already have refused.
 */
export async function startDelegation(options: StartDelegationOptions): Promise<Delegation> {
  const { config, clock, log } = options;
  const storeLog = log.child({ component: "store" });
  let redis: RedisBackend | undefined;
  let backend = options.backend;
  let restoreDone = false;
  let restoring: Promise<void> | undefined;
  let replicaMode: ReplicaMode | undefined;
  let coordinator: ReplicaCoordinator | undefined;

  const endpoint = options.backend ? undefined : redisEndpoint(config);
  if (!backend && endpoint) {
    for (const name of endpoint.target.ignoredParams) {
      log.warn("Ignoring unknown LIVEKIT_REDIS_URL query parameter", { parameter: name });
    }
    // Loaded only when configured: the Redis client adds about 10 MiB to the idle footprint.
    const { RedisBackend } = await import("../store/redis.ts");
    redis = new RedisBackend(endpoint, {
      clock,
      log: storeLog,
      caCerts: config.extraCaCerts,
      skipVerifyTls: config.skipVerifyTls,
      onReady: () => {
        writes.retryNow();
        if (replicaMode) coordinator?.redisReady();
        else if (!restoreDone) void runRestore();
      },
    });
    backend = redis;
    if (config.replica) {
      const { createReplicaMode } = await import("../replica/setup.ts");
      replicaMode = createReplicaMode({
        settings: config.replica,
        connection: redis.connection,
        clock,
        log: log.child({ component: "replica" }),
        metrics: options.metrics,
        onError: (op) => watch.storeError(op),
      });
    }
  }
  const watch: DelegationWatch = new DelegationWatch({
    clock,
    log: log.child({ component: "delegation" }),
    metrics: options.metrics,
    jobCount: (): number => manager.size,
  });
  const writes: JobWrites & { retryNow(): void; close(): Promise<void> } = replicaMode?.writes ??
    new JobStore({
      backend,
      clock,
      log: storeLog,
      onError: (op) => watch.storeError(op),
    });
  const manager = new JobManager({
    clock,
    log: log.child({ component: "delegation" }),
    outbound: options.outbound,
    csApi: options.csApi,
    lookup: options.lookup,
    store: writes,
    maxJobs: config.maxJobs,
    maxJobsPerUser: config.maxJobsPerUser,
    sanityIntervalMs: config.sanityCheckIntervalMs,
    asToken: config.appService?.asToken,
    timerResolutionMs: options.timerResolutionMs,
    watch,
  });

  function runRestore(): Promise<void> {
    restoring ??= (async () => {
      const hash = backend;
      if (!hash) return;
      let timer: Timer | undefined;
      const deadline = new Promise<"timeout">((resolve) => {
        timer = clock.setTimer(RESTORE_TIMEOUT_MS, () => resolve("timeout"));
      });
      try {
        const entries = await Promise.race([hash.getAll(), deadline]);
        if (entries === "timeout") throw new Error("HGETALL did not answer within 10 s");
        const plan = planRestore(entries, {
          nowMs: clock.now(),
          isLive: (field) => manager.isLiveField(field),
        });
        // Purges and moves land before the listener opens (bounded like the whole restore).
        const writes = await Promise.race([manager.applyRestore(plan).writes, deadline]);
        if (writes === "timeout" || writes.includes("failed")) {
          log.warn("Restore corrections not yet written to Redis; retrying in the background");
        }
      } catch (err) {
        watch.storeError("hgetall");
        log.error("Could not restore delegation jobs from Redis; starting without them", {
          err: describeError(err),
        });
      } finally {
        timer?.cancel();
        restoreDone = true;
      }
    })();
    return restoring;
  }

  if (redis) {
    redis.connect();
    let cause: unknown;
    let up = await redis.waitReady(STARTUP_PING_MS);
    if (up) {
      try {
        await redis.ping();
      } catch (err) {
        up = false;
        cause = err;
      }
    } else cause = redis.lastError ?? new Error("no answer within 5 s");
    if (replicaMode) {
      coordinator = replicaMode.attach(manager);
      coordinator.start();
      const ttl = config.replica?.ttlMs ?? 0;
      if (up && !(await coordinator.whenRestored(ttl + RESTORE_TIMEOUT_MS))) {
        log.error("Replica lease not taken or jobs not restored in time; continuing, not ready");
      }
    } else if (up) await runRestore();
    if (!up) {
      log.error(
        `Could not connect Redis store: store: Redis ping failed: ${errorMessage(cause)}`,
      );
      const hint = explainPermissionError(cause);
      if (hint) log.error(hint);
    }
  } else if (backend) {
    await runRestore();
  } else {
    restoreDone = true;
  }

  const webhook = createWebhookHandler({
    keys: { key: config.livekitKey, secret: config.livekitSecret },
    clock,
    log: log.child({ component: "webhook" }),
    shuttingDown: () => manager.shuttingDown,
    deliver: (room, identity, signal) => {
      if (manager.deliver(room, identity, signal) || !coordinator) return;
      return coordinator.forward(encodeField(room, identity), signal);
    },
    watch,
    observe: options.onWebhookEvent,
  });
  watch.start();

  let stopping: Promise<void> | undefined;
  return {
    register: (req) => manager.register(req),
    handleWebhook: webhook,
    redis: redis?.connection,
    shutdown() {
      stopping ??= (async () => {
        watch.stop();
        const live = await manager.shutdown();
        await coordinator?.stop();
        if (restoring) {
          let timer: Timer | undefined;
          await Promise.race([
            restoring,
            new Promise<void>((resolve) => {
              timer = clock.setTimer(1_000, resolve);
            }),
          ]);
          timer?.cancel();
        }
        if (!backend && live > 0) {
          log.warn("Dropping in-memory delegation jobs on shutdown (no Redis configured)", {
            jobs: live,
          });
        }
        await writes.close();
      })();
      return stopping;
    },
    status(): DelegationStatus {
      return {
        jobs: manager.size,
        byState: manager.byState(),
        redis: !backend ? "disabled" : redis && !redis.ready ? "unavailable" : "connected",
        restoreDone: coordinator ? coordinator.restored : restoreDone,
        ...(coordinator ? { replica: coordinator.status() } : {}),
      };
    },
  };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
