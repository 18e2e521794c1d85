/**
 * Replica coordination (replicas.md): what lets several active replicas share one Redis, each
 * driving its own jobs, none losing a job when another dies. The job manager stays as it is for
 * a single instance; in replica mode it writes through {@linkcode ReplicaWrites} and this module
 * around it:
 *
 * - **Lease** (R3, R9): `lk-jwt:replica:<id>` holds a per-process token with `PX` = TTL,
 *   renewed every TTL/5 together with this replica's entry in `lk-jwt:replicas` (score = lease
 *   expiry), in one script that also returns every replica's expiry. `/readyz` is not ready
 *   without the lease.
 * - **Start-up**: the lease is taken (if a previous process with the same id still holds it,
 *   this one waits for it to expire: a restarted replica never steals its jobs back from the
 *   replicas that took them over); then the jobs this id owns are restored as a single instance
 *   restores (delegation.md §10.4), jobs without any owner are claimed, and the signals left
 *   in this replica's stream are replayed.
 * - **Takeover** (R3, R5): each scan looks for replicas whose lease expired; see
 *   `takeover.ts`. Besides the scan every TTL/5, a check is armed for the moment the earliest
 *   peer lease would expire, so a death is noticed within milliseconds of the expiry.
 * - **Signals** (R4): `forward` appends a webhook signal for a job this replica does not have
 *   to its owner's stream; `signals.ts` reads this replica's own stream.
 * - **Redis unreachable** (R7): jobs go on from memory (a replica cannot tell "Redis is down
 *   for everybody", when nobody can take its jobs, from "only I am cut off"; restarting and
 *   sending are idempotent on the homeserver, so driving on is the safe choice). When Redis
 *   answers again and the lease had expired meanwhile, the replica takes it again, stops the
 *   jobs that were taken over in between (without sending), and for one TTL takes over nobody
 *   (the others are most likely just reconnecting too).
 * - **Shutdown**: after the jobs stopped and the writes were flushed, the lease is given up, so
 *   the survivors take the jobs over at their next scan instead of a TTL later.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import type { JobSignal } from "../delegation/state_machine.ts";
import { leaseKey, OWNERS_HASH, REPLICAS_ZSET, STREAM_MAXLEN, STREAM_PREFIX } from "./keys.ts";
import { handleSignal, parsePeers, reconcile, restoreOwnJobs } from "./ownership.ts";
import { FORWARD, LEASE, type RedisCommand, RELEASE_LEASE, runScript } from "./scripts.ts";
import { entryTime, SignalReader } from "./signals.ts";
import type { ReplicaWrites } from "./store.ts";
import { type ReplicaHost, Takeover } from "./takeover.ts";

/** Margin after a peer's lease expiry before the armed check runs. */
const EXPIRY_MARGIN_MS = 20;

/** Options of {@linkcode ReplicaCoordinator}. */
export interface ReplicaCoordinatorOptions {
  id: string;
  /** Random per process: tells this process's lease from a previous one with the same id. */
  token: string;
  ttlMs: number;
  /** The shared connection. */
  command: RedisCommand;
  /** A connection used only for blocking stream reads. */
  blocking: RedisCommand;
  host: ReplicaHost;
  writes: ReplicaWrites;
  clock: Clock;
  log: Logger;
  metrics?: ServiceMetrics;
}

/** Replica state for readiness and logs. */
export interface ReplicaStatus {
  id: string;
  /** The lease is held and this replica's jobs are restored. */
  lease: boolean;
  /** Replicas with a live lease, this one included. */
  peers: number;
}

/** Lease, takeover and signal forwarding of one replica. */
export class ReplicaCoordinator {
  readonly #o: ReplicaCoordinatorOptions;
  readonly #takeover: Takeover;
  readonly #reader: SignalReader;
  readonly #periodMs: number;
  #timer: Timer | undefined;
  #expiryTimer: { at: number; timer: Timer } | undefined;
  #ticking = false;
  #again = false;
  #stopped = false;
  /** Monotonic time until which the lease is certainly held (last renewal sent + TTL). */
  #validUntil = -Infinity;
  #everHeld = false;
  #restored = false;
  /** Redis time at which this process took its lease (older stream entries are replays). */
  #acquiredAt = 0;
  #graceUntil = -Infinity;
  #peers = 1;
  #conflictLogged = false;
  #failures = 0;
  #restoredWaiters: (() => void)[] = [];

  constructor(options: ReplicaCoordinatorOptions) {
    this.#o = options;
    this.#periodMs = Math.max(1, Math.floor(options.ttlMs / 5));
    this.#takeover = new Takeover({
      id: options.id,
      command: options.command,
      clock: options.clock,
      log: options.log,
      host: options.host,
      release: (field) => options.writes.delete(field),
      replay: (entry) => handleSignal(options, entry, true),
      onTakenOver: (n) => options.metrics?.replicaTakenOver.inc(undefined, n),
    });
    this.#reader = new SignalReader({
      id: options.id,
      blocking: options.blocking,
      command: options.command,
      clock: options.clock,
      log: options.log,
      handle: (entry) => handleSignal(options, entry, entryTime(entry.id) < this.#acquiredAt),
    });
    const m = options.metrics;
    if (m) {
      m.replicaInfo.set({ replica_id: options.id }, 1);
      m.replicaLease.collect = (g) => g.set(undefined, this.hasLease ? 1 : 0);
      m.replicaJobsOwned.collect = (g) => g.set(undefined, options.host.size);
      m.replicaPeers.collect = (g) => g.set(undefined, this.#peers);
    }
  }

  /** Whether the lease is held (and this replica's jobs are restored). */
  get hasLease(): boolean {
    return this.#restored && this.#o.clock.monotonic() < this.#validUntil;
  }

  /** Whether this replica's own jobs were restored (after the lease was first taken). */
  get restored(): boolean {
    return this.#restored;
  }

  /** State for `/readyz` and the start-up log. */
  status(): ReplicaStatus {
    return { id: this.#o.id, lease: this.hasLease, peers: this.#peers };
  }

  /** Starts the lease loop (first attempt at once). */
  start(): void {
    void this.#tick();
  }

  /** Redis answered again: renew (or take) the lease now. */
  redisReady(): void {
    if (!this.#stopped) void this.#tick();
  }

  /** Resolves true once the lease is held and the jobs restored, false after `timeoutMs`. */
  whenRestored(timeoutMs: number): Promise<boolean> {
    if (this.#restored) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => {
        timer.cancel();
        resolve(true);
      };
      const timer = this.#o.clock.setTimer(timeoutMs, () => {
        this.#restoredWaiters = this.#restoredWaiters.filter((w) => w !== waiter);
        resolve(false);
      });
      this.#restoredWaiters.push(waiter);
    });
  }

  /**
   * Hands a webhook signal for a job this process does not drive to the replica that does
   * (R4): appended to its stream in the same step as the owner lookup.
   *
   * @returns false when Redis could not be asked (the webhook answers `503`).
   */
  async forward(field: string, signal: JobSignal): Promise<boolean> {
    const { id, command, clock, log, metrics } = this.#o;
    try {
      const reply = await runScript(command, FORWARD, [OWNERS_HASH], [
        field,
        id,
        STREAM_PREFIX,
        String(STREAM_MAXLEN),
        signal,
        String(Math.round(clock.now())),
      ]);
      const kind = Array.isArray(reply) ? Number(reply[0]) : -1;
      const outcome = kind === 2 ? "appended" : kind === 1 ? "owner_here" : "no_job";
      metrics?.replicaForwarded.inc({ outcome });
      if (kind === 2) {
        log.debug("Forwarded webhook signal to the replica that drives the job", {
          field,
          signal,
          replica: String((reply as unknown[])[1]),
        });
      } else log.debug("No delegation job for webhook event", { field, signal, outcome });
      return true;
    } catch (err) {
      metrics?.replicaForwarded.inc({ outcome: "failed" });
      log.warn("Could not forward a webhook signal through Redis; answering 503", {
        field,
        signal,
        err: describeError(err),
      });
      return false;
    }
  }

  /** A restart confirmation found the job owned by another replica now: stop it here. */
  lost(field: string): void {
    this.#o.host.drop(field, "another replica owns the job now");
  }

  /**
   * Stops the loops and gives the lease up (call after the jobs stopped and the writes were
   * flushed, before the connections close).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#timer?.cancel();
    this.#expiryTimer?.timer.cancel();
    for (const w of this.#restoredWaiters.splice(0)) w();
    const reading = this.#reader.stop();
    if (this.#everHeld) {
      try {
        await runScript(this.#o.command, RELEASE_LEASE, [leaseKey(this.#o.id), REPLICAS_ZSET], [
          this.#o.id,
          this.#o.token,
        ], 2_000);
        this.#o.log.info("Gave up the replica lease; the other replicas take the jobs over", {
          replica: this.#o.id,
        });
      } catch (err) {
        this.#o.log.warn("Could not give up the replica lease; it expires by itself", {
          err: describeError(err),
        });
      }
    }
    // A blocking read returns within its block time; with Redis away it is cut when the
    // connection closes, so do not wait for it longer than a second here.
    let timer: Timer | undefined;
    await Promise.race([
      reading,
      new Promise<void>((resolve) => {
        timer = this.#o.clock.setTimer(1_000, resolve);
      }),
    ]);
    timer?.cancel();
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = true;
    let next = this.#periodMs;
    try {
      do {
        this.#again = false;
        next = await this.#tickOnce();
      } while (this.#again && !this.#stopped);
    } catch (err) {
      this.#o.log.error("Replica coordination step failed", { err: describeError(err) });
    } finally {
      this.#ticking = false;
      if (!this.#stopped) {
        this.#timer?.cancel();
        this.#timer = this.#o.clock.setTimer(next, () => void this.#tick());
      }
    }
  }

  /** One renewal and scan; returns the delay of the next one. */
  async #tickOnce(): Promise<number> {
    const { id, token, ttlMs, command, clock, log, metrics } = this.#o;
    const sentAt = clock.monotonic();
    let reply: unknown;
    try {
      reply = await runScript(command, LEASE, [leaseKey(id), REPLICAS_ZSET], [
        id,
        token,
        String(ttlMs),
      ]);
    } catch (err) {
      metrics?.replicaRenewals.inc({ outcome: "failed" });
      if (this.#failures++ === 0) {
        log.warn("Could not renew the replica lease; jobs keep running from memory", {
          replica: id,
          err: describeError(err),
        });
      }
      return this.#periodMs;
    }
    if (this.#failures > 0) {
      log.info("Redis answers again; replica lease renewed", { replica: id });
      this.#failures = 0;
    }
    const [rc, redisNow, rest] = Array.isArray(reply) ? reply : [];
    const now = Number(redisNow);
    if (Number(rc) === 0) return this.#conflict(Number(rest));
    // Lost meanwhile: the key had expired, or no renewal was confirmed for a whole TTL (a
    // renewal stuck on a cut connection may still have run late and re-created the key, so
    // the reply alone cannot be trusted).
    const lostMeanwhile = this.#everHeld && (Number(rc) === 2 || sentAt > this.#validUntil);
    this.#validUntil = sentAt + ttlMs;
    this.#conflictLogged = false;
    metrics?.replicaRenewals.inc({ outcome: lostMeanwhile ? "reasserted" : "ok" });
    if (!this.#everHeld) {
      this.#everHeld = true;
      this.#acquiredAt = now;
      log.info("Replica lease taken", { replica: id, ttl_ms: ttlMs });
    }
    if (lostMeanwhile) {
      log.warn("Replica lease had expired while Redis was out of reach; taken again", {
        replica: id,
      });
      this.#graceUntil = sentAt + ttlMs;
      await reconcile(this.#o);
    }
    if (!this.#restored) {
      await restoreOwnJobs(this.#o, { redisNow: now, takeover: this.#takeover });
      this.#restored = true;
      for (const w of this.#restoredWaiters.splice(0)) w();
      this.#reader.start();
    }
    const peers = parsePeers(rest);
    const live = peers.filter((p) => p.id === id || p.expiry >= now).map((p) => p.id);
    if (!live.includes(id)) live.push(id);
    this.#peers = live.length;
    if (sentAt >= this.#graceUntil && !this.#o.host.shuttingDown) {
      for (const p of peers) {
        if (p.id !== id && p.expiry < now) {
          await this.#takeover.run(p.id, live, this.#periodMs, now - p.expiry);
        }
      }
    }
    this.#armExpiryCheck(peers, { id, now, sentAt });
    return this.#periodMs;
  }

  /** Arms a check for the moment the earliest live peer's lease would expire. */
  #armExpiryCheck(
    peers: { id: string; expiry: number }[],
    at: { id: string; now: number; sentAt: number },
  ): void {
    let earliest = Infinity;
    for (const p of peers) {
      if (p.id !== at.id && p.expiry >= at.now) earliest = Math.min(earliest, p.expiry);
    }
    if (!Number.isFinite(earliest)) return;
    const due = at.sentAt + (earliest - at.now) + EXPIRY_MARGIN_MS;
    if (this.#expiryTimer && this.#expiryTimer.at <= due) return;
    this.#expiryTimer?.timer.cancel();
    const timer = this.#o.clock.setTimer(due - this.#o.clock.monotonic(), () => {
      this.#expiryTimer = undefined;
      void this.#tick();
    });
    this.#expiryTimer = { at: due, timer };
  }

  /** Another process holds this replica id's lease. */
  #conflict(pttl: number): number {
    const { id, log, metrics, host } = this.#o;
    metrics?.replicaRenewals.inc({ outcome: "conflict" });
    if (this.#everHeld && this.#validUntil > -Infinity) {
      // Someone started with our id while we were cut off: that process restored our jobs.
      log.error(
        "Another process took this replica id (LIVEKIT_REPLICA_ID must be unique); stopping this process's jobs",
        { replica: id },
      );
      for (const field of host.fields()) host.drop(field, "replica id taken by another process");
      this.#validUntil = -Infinity;
    } else if (!this.#conflictLogged) {
      log.warn(
        "The lease of this replica id is held by another process (an earlier run, or a second process with the same LIVEKIT_REPLICA_ID); waiting for it to expire",
        { replica: id, expires_in_ms: pttl },
      );
    }
    this.#conflictLogged = true;
    return Math.max(10, Math.min(this.#periodMs, (pttl > 0 ? pttl : 0) + EXPIRY_MARGIN_MS));
  }
}
