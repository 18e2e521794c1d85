/**
 * The job manager (delegation.md §3): the one owner of the table of live jobs, keyed by
 * (LiveKit room name, identity) through the job's Redis field. It checks T and the caps (D14),
 * replaces jobs, routes webhook signals, turns job reports into store writes, restores stored
 * jobs (§10.4) and stops everything on shutdown (§12).
 *
 * Everything here is synchronous except the store writes, which go through the per-field
 * ordered {@linkcode JobStore}: a slow Redis never blocks signal routing, other jobs or other
 * requests; a registration waits at most 2 s for its own first write.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import { Errors } from "../http/errors.ts";
import { Secret, serverName as toServerName, type UserId, userId as toUserId } from "../ids.ts";
import type { LiveKitIdentity, LiveKitRoomAlias } from "../ids.ts";
import type { Logger } from "../log.ts";
import {
  encodeField,
  encodeValue,
  formatRfc3339,
  MAX_DELAY_TIMEOUT_MS,
  msToNs,
} from "../store/codec.ts";
import type { WriteResult } from "../store/job_store.ts";
import type { RestorePlan } from "../store/restore.ts";
import { DelayedEventClient } from "./homeserver.ts";
import type { DelegationWatch } from "./watch.ts";
import { Scheduler } from "./scheduler.ts";
import { Job, type JobDeps, jobLogger, type JobParams } from "./job.ts";
import type { CsApiResolver, DelegationRequest, Outbound, ParticipantLookup } from "./ports.ts";
import type { JobSignal } from "./state_machine.ts";

/** How long a registration waits for its first Redis write (delegation.md §10.3). */
export const REGISTER_WRITE_WAIT_MS = 2_000;
/** How long shutdown lets in-flight delayed-event POSTs finish (delegation.md §12). */
export const SHUTDOWN_CALLS_MS = 5_000;
/** How long shutdown waits for pending store writes (delegation.md §12). */
export const SHUTDOWN_FLUSH_MS = 2_000;

/** Why a job is written: its registration, a successful restart, or a restore correction. */
export type WriteCause = "add" | "restart" | "restore";

/**
 * Where the manager writes jobs: the ordered, retried {@linkcode import("../store/job_store.ts").JobStore}
 * of the jobs hash, or, with several replicas, the replica store that also records ownership
 * (replicas.md §3). The cause lets the replica store tell a registration (takes ownership)
 * from a restart (only while still the owner).
 */
export interface JobWrites {
  readonly persistent: boolean;
  put(field: string, value: string, cause: WriteCause): Promise<WriteResult>;
  delete(field: string): Promise<WriteResult>;
  isPending(field: string): boolean;
  flush(timeoutMs: number): Promise<boolean>;
}

/** Options of {@linkcode JobManager}. */
export interface JobManagerOptions {
  clock: Clock;
  log: Logger;
  outbound: Outbound;
  csApi: CsApiResolver;
  lookup: ParticipantLookup;
  store: JobWrites;
  maxJobs: number;
  maxJobsPerUser: number;
  sanityIntervalMs: number;
  /** App-service mode: the as_token that app-service jobs' calls carry. */
  asToken?: Secret<"as_token">;
  /** Timer coalescing of the job scheduler; default {@linkcode TIMER_RESOLUTION_MS}. */
  timerResolutionMs?: number;
  watch?: DelegationWatch;
}

/**
 * Job timers fire at most this late, so the process wakes at most 50 times per second however
 * many jobs run (each wake-up costs far more than the work it does; docs/performance.md).
 */
export const TIMER_RESOLUTION_MS = 20;

/** Owner of every live job. */
export class JobManager {
  readonly #opts: JobManagerOptions;
  readonly #jobs = new Map<string, Job>();
  readonly #perUser = new Map<UserId, number>();
  readonly #deps: JobDeps;
  readonly #timers: Scheduler;
  #shuttingDown = false;

  constructor(options: JobManagerOptions) {
    this.#opts = options;
    this.#timers = new Scheduler(options.clock, {
      resolutionMs: options.timerResolutionMs ?? TIMER_RESOLUTION_MS,
      onError: (err) => options.log.error("Delegation timer callback failed", { err: String(err) }),
    });
    this.#deps = {
      clock: this.#timers,
      log: options.log,
      lookup: options.lookup,
      csApi: options.csApi,
      calls: new DelayedEventClient({
        outbound: options.outbound,
        clock: options.clock,
        watch: options.watch,
      }),
      sanityIntervalMs: options.sanityIntervalMs,
      asToken: options.asToken,
      tasks: new Set(),
      onDone: (job) => this.#onDone(job),
      onRestarted: (job, atMs) => this.#onRestarted(job, atMs),
    };
  }

  /** Whether shutdown started. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Number of live jobs. */
  get size(): number {
    return this.#jobs.size;
  }

  /** Live jobs per state. */
  byState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const job of this.#jobs.values()) out[job.state] = (out[job.state] ?? 0) + 1;
    return out;
  }

  /** The live job for a key, if any (tests and diagnostics). */
  get(room: LiveKitRoomAlias, identity: LiveKitIdentity): Job | undefined {
    return this.#jobs.get(encodeField(room, identity));
  }

  /** Whether a field belongs to a live job or has a pending write (restore merging). */
  isLiveField(field: string): boolean {
    return this.#jobs.has(field) || this.#opts.store.isPending(field);
  }

  /**
   * Adds or replaces the job of the request's key (delegation.md §3 "Add").
   *
   * @throws {import("../http/errors.ts").ApiError} as http-api.md §9.1.
   */
  async register(req: DelegationRequest): Promise<void> {
    const { clock, store } = this.#opts;
    if (this.#shuttingDown) throw Errors.shuttingDown();
    const T = req.delayTimeoutMs;
    if (!Number.isSafeInteger(T) || T < 1 || T > MAX_DELAY_TIMEOUT_MS) {
      throw Errors.badJson(`invalid delay timeout for delayed event job: ${T}ms`);
    }
    const field = encodeField(req.room, req.identity);
    const existing = this.#jobs.get(field);
    if (!existing) {
      if ((this.#perUser.get(req.userId) ?? 0) >= this.#opts.maxJobsPerUser) {
        throw Errors.badJson("Too many delegated delayed events for this user");
      }
      if (this.#jobs.size >= this.#opts.maxJobs) {
        throw Errors.badJson("Too many delegated delayed events");
      }
    } else {
      this.#remove(existing);
      existing.signal("JobReplaced");
    }
    const job = this.#create({ ...req, delayTimeoutNs: msToNs(T) }, { field });
    const value = this.#value(job, formatRfc3339(clock.now()));
    const written = store.put(field, value, "add");
    job.start();
    let timer: Timer | undefined;
    const result = await Promise.race([
      written,
      new Promise<"timeout">((resolve) => {
        timer = clock.setTimer(REGISTER_WRITE_WAIT_MS, () => resolve("timeout"));
      }),
    ]);
    timer?.cancel();
    if (result === "failed" || result === "timeout") {
      this.#jobLog(job).error("Delegation job not yet persisted; answering anyway", { result });
    }
  }

  /**
   * Hands a webhook signal to the job of exactly this key.
   *
   * @returns false when no job of this process has the key (single instance: dropped, DEBUG;
   * with several replicas the caller forwards it to the replica that owns the job).
   */
  deliver(room: string, identity: string, signal: JobSignal): boolean {
    const job = this.#jobs.get(encodeField(room, identity));
    if (!job) {
      this.#opts.log.debug("No delegation job for webhook event", { room, identity, signal });
      return false;
    }
    job.signal(signal);
    return true;
  }

  /**
   * Hands a signal to the job of a Redis field (signals forwarded by other replicas,
   * replicas.md §3). A `replayed` signal was meant for a replica that died: its job is recreated
   * here waiting for its participant, having lost its state, so a leave (intentional or
   * aborted) means "the participant is gone" and ends the wait with a send, as it would have on
   * the dead replica.
   *
   * @returns whether a job had the field.
   */
  deliverField(field: string, signal: JobSignal, options: { replayed?: boolean } = {}): boolean {
    const job = this.#jobs.get(field);
    if (!job) {
      this.#opts.log.debug("No delegation job for forwarded signal", { field, signal });
      return false;
    }
    const gone = signal === "ParticipantDisconnectedIntentionally" ||
      signal === "ParticipantConnectionAborted";
    if (options.replayed && gone && job.state === "WaitingForInitialConnect") {
      job.signal("WaitingStateTimedOut");
    } else job.signal(signal);
    return true;
  }

  /**
   * Stops the job of a field without sending and without touching Redis, because another
   * replica drives it now (replaced there, or taken over while this one could not reach Redis).
   *
   * @returns whether a job had the field.
   */
  drop(field: string, reason: string): boolean {
    const job = this.#jobs.get(field);
    if (!job) return false;
    this.#remove(job);
    this.#jobLog(job).info("Delegation job handed to another replica; stopping it here", {
      reason,
    });
    job.signal("JobReplaced");
    return true;
  }

  /** Fields of the live jobs of this process. */
  fields(): string[] {
    return [...this.#jobs.keys()];
  }

  /**
   * Applies a restore plan (delegation.md §10.4): store corrections first, then the jobs.
   * Keys that became live meanwhile are skipped (a live job wins), unless `replace` is set: jobs
   * taken over from a replica that died (replicas.md §3) win over a stale local job of the key.
   * `what` is the INFO line that reports the counts.
   *
   * @returns the number of jobs recreated, their fields and the first attempts of the store
   * corrections.
   */
  applyRestore(
    plan: RestorePlan,
    options: { replace?: boolean; what?: string } = {},
  ): { restored: number; fields: string[]; writes: Promise<WriteResult[]> } {
    const { store, clock, log } = this.#opts;
    const writes: Promise<WriteResult>[] = [];
    const fields: string[] = [];
    for (const { field, value } of plan.puts) writes.push(store.put(field, value, "restore"));
    for (const field of plan.deletes) writes.push(store.delete(field));
    for (const { field, reason } of plan.invalid) {
      log.warn("Skipping unreadable stored delegation job", { field, reason });
    }
    let restored = 0;
    for (const entry of plan.jobs) {
      if (this.#shuttingDown) continue;
      const live = this.#jobs.get(entry.field);
      if (live && !options.replace) continue;
      if (live) {
        this.#remove(live);
        live.signal("JobReplaced");
      }
      const s = entry.job;
      const params: JobParams = {
        serverName: toServerName(s.serverName),
        delayId: new Secret("delay_id", s.delayId),
        delayTimeoutMs: entry.delayTimeoutMs,
        delayTimeoutNs: s.delayTimeoutNs,
        room: s.room as LiveKitRoomAlias,
        identity: s.identity as LiveKitIdentity,
        // App-service jobs know their user (and count towards its cap); others do not.
        userId: s.appServiceUser === undefined ? undefined : toUserId(s.appServiceUser),
        appServiceUser: s.appServiceUser === undefined ? undefined : toUserId(s.appServiceUser),
      };
      const job = this.#create(params, {
        field: entry.field,
        restored: { remainingMs: entry.remainingMs },
      });
      this.#jobLog(job).debug("Restored delegation job", { remaining_ms: entry.remainingMs });
      job.start();
      fields.push(entry.field);
      restored++;
    }
    log.info(options.what ?? "Restored delegation jobs", {
      restored,
      purged: plan.deletes.length,
      moved: plan.puts.length,
      unreadable: plan.invalid.length,
      kept_live: plan.live.length,
      at: formatRfc3339(clock.now()),
    });
    return { restored, fields, writes: Promise.all(writes) };
  }

  /**
   * Stops accepting jobs, stops every job without sending and without touching Redis, lets
   * in-flight delayed-event POSTs finish (≤ 5 s) and flushes the store (≤ 2 s).
   *
   * @returns the number of jobs that were live.
   */
  async shutdown(): Promise<number> {
    const { clock, store } = this.#opts;
    this.#shuttingDown = true;
    for (const job of this.#jobs.values()) job.stop();
    const tasks = [...this.#deps.tasks];
    if (tasks.length > 0) {
      let timer: Timer | undefined;
      await Promise.race([
        Promise.allSettled(tasks),
        new Promise<void>((resolve) => {
          timer = clock.setTimer(SHUTDOWN_CALLS_MS, resolve);
        }),
      ]);
      timer?.cancel();
    }
    await store.flush(SHUTDOWN_FLUSH_MS);
    this.#timers.close();
    const live = this.#jobs.size;
    this.#jobs.clear();
    this.#perUser.clear();
    return live;
  }

  #create(params: JobParams, options: { field: string; restored?: { remainingMs: number } }) {
    const job = new Job(params, {
      field: options.field,
      deps: this.#deps,
      restored: options.restored,
    });
    this.#jobs.set(options.field, job);
    if (params.userId !== undefined) {
      this.#perUser.set(params.userId, (this.#perUser.get(params.userId) ?? 0) + 1);
    }
    return job;
  }

  #remove(job: Job): void {
    if (this.#jobs.get(job.field) === job) this.#jobs.delete(job.field);
    const user = job.params.userId;
    if (user === undefined) return;
    const n = (this.#perUser.get(user) ?? 1) - 1;
    if (n <= 0) this.#perUser.delete(user);
    else this.#perUser.set(user, n);
  }

  #onDone(job: Job): void {
    if (this.#jobs.get(job.field) !== job) return;
    this.#remove(job);
    this.#jobLog(job).debug("Delegation job done", { state: job.state });
    void this.#opts.store.delete(job.field);
  }

  #onRestarted(job: Job, atMs: number): void {
    const { store } = this.#opts;
    if (!store.persistent || this.#jobs.get(job.field) !== job || this.#shuttingDown) return;
    void this.#opts.store.put(job.field, this.#value(job, formatRfc3339(atMs)), "restart");
  }

  #value(job: Job, restartedAt: string): string {
    const p = job.params;
    return encodeValue({
      delayId: p.delayId.reveal(),
      delayTimeoutNs: p.delayTimeoutNs,
      serverName: p.serverName,
      room: p.room,
      identity: p.identity,
      restartedAt,
      appServiceUser: p.appServiceUser,
    });
  }

  #jobLog(job: Job): Logger {
    return jobLogger(this.#opts.log, job.params);
  }
}
