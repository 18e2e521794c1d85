/**
 * One delegation job (delegation.md §9.3): runs the actions of the pure state machine in
 * `state_machine.ts`, owns its timers (waiting timer W, restart timer P, sanity checks) and its
 * background tasks (initial lookup, confirmation, restart cycles, the send) through
 * `AbortController`s, and reports "restart succeeded at t" and "done" to the manager.
 *
 * Signals are processed one at a time in arrival order; a signal raised while another is being
 * processed (e.g. `DelayedEventReset` on entering Connected) is queued behind it. Homeserver
 * POSTs already in flight are not cancelled when the job stops; their results are ignored
 * (§4 "Cancellation"), except that a send finishing during shutdown may still report done.
 *
 * Memory: a connected job between restarts holds its parameters, two timers and nothing else
 * (dependencies are shared by all jobs, log fields are built only when a line is written).
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type {
  DelayId,
  LiveKitIdentity,
  LiveKitRoomAlias,
  Secret,
  ServerName,
  UserId,
} from "../ids.ts";
import type { Logger } from "../log.ts";
import {
  callWithRetry,
  type DelayedEventClient,
  delayHash,
  logRestartFailure,
  logSendResult,
} from "./homeserver.ts";
import { type LookupContext, runConfirmation, runInitialLookup, SanityChecks } from "./lookup.ts";
import type { CsApiBase, CsApiResolver, ParticipantLookup } from "./ports.ts";
import { type JobAction, type JobSignal, type JobState, transition } from "./state_machine.ts";

/** Longest waiting time and send budget (delegation.md §9.3). */
export const MAX_WAIT_MS = 3_600_000;
/** Smallest send budget, also used when no deadline is known. */
export const MIN_SEND_BUDGET_MS = 1_000;
/** Floor of the restart period P = max(0.8·T, 250 ms) (D14). */
export const MIN_RESTART_PERIOD_MS = 250;

/** The parameters of a job (delegation.md §2). */
export interface JobParams {
  serverName: ServerName;
  delayId: DelayId;
  delayTimeoutMs: number;
  /** T in nanoseconds as persisted (exact, also for restored values). */
  delayTimeoutNs: bigint;
  room: LiveKitRoomAlias;
  identity: LiveKitIdentity;
  /** Verified user; absent for restored standalone jobs. */
  userId: UserId | undefined;
  /** App-service jobs: the user restart/send act as (app-service.md §5.3). */
  appServiceUser?: UserId | undefined;
}

/** What jobs need from their owner; one object shared by every job. */
export interface JobDeps {
  clock: Clock;
  log: Logger;
  lookup: ParticipantLookup;
  csApi: CsApiResolver;
  calls: DelayedEventClient;
  /** App-service mode: the as_token that app-service jobs' calls carry. */
  asToken?: Secret<"as_token">;
  /** Phase-2 period; 0 disables sanity checks. */
  sanityIntervalMs: number;
  /** Background tasks of all jobs (awaited, bounded, at shutdown). */
  tasks: Set<Promise<void>>;
  /** The job finished (sent, gave up or aborted). */
  onDone: (job: Job) => void;
  /** A restart attempt sent at wall-clock time `atMs` succeeded. */
  onRestarted: (job: Job, atMs: number) => void;
}

/** For restored jobs: the deadline carried over from `RestartedAt` (delegation.md §10.4). */
export interface RestoredTiming {
  /** Milliseconds left until `RestartedAt + T`, > 0. */
  remainingMs: number;
}

/** The log fields of a job (delegation.md §11: the delay ID only as its short hash). */
export function jobLogger(log: Logger, params: JobParams): Logger {
  return log.child({
    room: params.room,
    identity: params.identity,
    server: params.serverName,
    delay: delayHash(params.delayId.reveal()),
  });
}

/** A live delegation job. */
export class Job {
  readonly params: JobParams;
  /** The Redis field of the job key, also the key of the manager's table. */
  readonly field: string;
  readonly #deps: JobDeps;
  #state: JobState = "WaitingForInitialConnect";
  #queue: JobSignal[] | undefined;
  #stopped = false;
  /** Monotonic deadline D; undefined until known. */
  #deadline: number | undefined;
  #waitMs: number;
  #waitTimer: Timer | undefined;
  #restartTimer: Timer | undefined;
  #sanity: SanityChecks | undefined;
  #phase1: AbortController | undefined;
  #confirm: AbortController | undefined;
  #cycle: AbortController | undefined;
  #send: AbortController | undefined;

  constructor(
    params: JobParams,
    options: { field: string; deps: JobDeps; restored?: RestoredTiming },
  ) {
    this.params = params;
    this.field = options.field;
    this.#deps = options.deps;
    const restored = options.restored;
    if (restored) {
      this.#deadline = options.deps.clock.monotonic() + restored.remainingMs;
      this.#waitMs = Math.min(MAX_WAIT_MS, restored.remainingMs);
    } else {
      this.#waitMs = Math.min(MAX_WAIT_MS, params.delayTimeoutMs);
    }
  }

  /** Current state. */
  get state(): JobState {
    return this.#state;
  }

  /** A logger carrying this job's fields (built on demand). */
  get log(): Logger {
    return jobLogger(this.#deps.log, this.params);
  }

  /** Arms the waiting timer W and starts lookup phase 1 (first call immediately). */
  start(): void {
    this.#waitTimer = this.#deps.clock.setTimer(this.#waitMs, () => {
      this.#waitTimer = undefined;
      this.signal("WaitingStateTimedOut");
    });
    this.#phase1 = new AbortController();
    this.#spawn(
      runInitialLookup(this.#lookupContext(), {
        budgetMs: this.#waitMs,
        signal: this.#phase1.signal,
      }),
    );
  }

  /** Delivers a signal; processed after any signal already being processed. */
  signal(signal: JobSignal): void {
    if (this.#stopped) return;
    if (this.#queue) {
      this.#queue.push(signal);
      return;
    }
    const queue: JobSignal[] = [signal];
    this.#queue = queue;
    try {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (this.#stopped) break;
        const from = this.#state;
        const t = transition(from, next);
        this.#state = t.state;
        if (t.actions.length > 0 && this.#deps.log.enabled("debug")) {
          this.log.debug("Job signal", { signal: next, from, to: t.state });
        }
        for (const action of t.actions) this.#run(action, next);
      }
    } finally {
      this.#queue = undefined;
    }
  }

  /**
   * Stops the job for shutdown: no send, no further homeserver calls, no store change (a send
   * already in flight may still report done).
   */
  stop(): void {
    this.#stopped = true;
    this.#stopAll();
  }

  #run(action: JobAction, cause: JobSignal): void {
    switch (action) {
      case "leaveWaiting":
        this.#waitTimer?.cancel();
        this.#waitTimer = undefined;
        this.#phase1?.abort();
        this.#phase1 = undefined;
        return;
      case "enterConnected":
        return this.#enterConnected();
      case "leaveConnected":
        this.#restartTimer?.cancel();
        this.#restartTimer = undefined;
        this.#sanity?.stop();
        this.#sanity = undefined;
        this.#cycle?.abort();
        this.#cycle = undefined;
        return;
      case "restartCycle":
        return this.#restartCycle();
      case "confirm":
        return this.#startConfirmation();
      case "send":
        this.#confirm?.abort();
        this.#send = new AbortController();
        this.#spawn(this.#runSend(this.#send.signal));
        return;
      case "reportDone":
        this.#confirm?.abort();
        this.log.info("Delegation job aborted; the delayed event is not sent", { reason: cause });
        this.#deps.onDone(this);
        return;
      case "stopAll":
        this.#stopAll();
        this.log.info("Delegation job replaced by a newer one");
        return;
      default:
        return assertNever(action);
    }
  }

  #stopAll(): void {
    this.#waitTimer?.cancel();
    this.#restartTimer?.cancel();
    this.#sanity?.stop();
    this.#waitTimer = this.#restartTimer = this.#sanity = undefined;
    for (const c of [this.#phase1, this.#confirm, this.#cycle, this.#send]) c?.abort();
    this.#phase1 =
      this.#confirm =
      this.#cycle =
      this.#send =
        undefined;
  }

  #enterConnected(): void {
    const { clock, sanityIntervalMs } = this.#deps;
    this.#deadline = clock.monotonic() + this.params.delayTimeoutMs;
    if (sanityIntervalMs > 0) {
      this.#sanity = new SanityChecks(() => this.#lookupContext(), sanityIntervalMs);
      this.#sanity.start(clock);
    }
    this.signal("DelayedEventReset");
  }

  #restartCycle(): void {
    if (this.#cycle) return;
    const now = this.#deps.clock.monotonic();
    if (this.#deadline === undefined || now >= this.#deadline) {
      this.signal("DelayedEventTimedOut");
      return;
    }
    this.#restartTimer?.cancel();
    this.#restartTimer = undefined;
    const cycle = new AbortController();
    this.#cycle = cycle;
    this.#spawn(this.#runCycle(cycle));
  }

  #startConfirmation(): void {
    if (this.#confirm) return;
    const confirm = new AbortController();
    this.#confirm = confirm;
    this.#spawn(
      runConfirmation(this.#lookupContext(), { signal: confirm.signal }).finally(() => {
        if (this.#confirm === confirm) this.#confirm = undefined;
      }),
    );
  }

  async #runCycle(cycle: AbortController): Promise<void> {
    const { clock, calls } = this.#deps;
    const signal = cycle.signal;
    const base = await this.#resolveCsApi(signal);
    if (signal.aborted) return;
    if (!base) {
      this.#cycle = undefined;
      this.log.warn("Could not resolve the client-server API for a restart; aborting the job");
      this.signal("CsApiUrlNotFound");
      return;
    }
    let sentAt = 0;
    const { serverName, delayId } = this.params;
    const result = await callWithRetry(calls, {
      base,
      serverName,
      delayId,
      actAs: this.#actAs(),
      action: "restart",
      clock,
      // Per-attempt lines are DEBUG: build the job's field set only when they are written.
      log: this.#deps.log.enabled("debug") ? this.log : this.#deps.log,
      budgetMs: (this.#deadline ?? 0) - clock.monotonic(),
      signal,
      onAttempt: () => void (sentAt = clock.monotonic()),
    });
    if (signal.aborted || this.#cycle !== cycle) return;
    this.#cycle = undefined;
    const outcome = result.value;
    if (result.end === "final" && outcome?.kind === "success") {
      const T = this.params.delayTimeoutMs;
      this.#deadline = sentAt + T;
      this.#deps.onRestarted(this, clock.now() - (clock.monotonic() - sentAt));
      this.#restartTimer = clock.setTimer(Math.max(0.8 * T, MIN_RESTART_PERIOD_MS), () => {
        this.#restartTimer = undefined;
        this.signal("DelayedEventReset");
      });
      return;
    }
    const notFound = logRestartFailure(this.log, { base, result });
    if (notFound) {
      this.signal("DelayedEventNotFound");
      return;
    }
    this.signal("DelayedEventTimedOut");
  }

  async #runSend(signal: AbortSignal): Promise<void> {
    const { clock, calls } = this.#deps;
    const budgetMs = this.#deadline === undefined
      ? MIN_SEND_BUDGET_MS
      : Math.min(MAX_WAIT_MS, Math.max(MIN_SEND_BUDGET_MS, this.#deadline - clock.monotonic()));
    const base = await this.#resolveCsApi(signal);
    if (signal.aborted) return;
    const log = this.log;
    if (!base) {
      log.error("Could not resolve the client-server API; giving up without sending");
      this.#deps.onDone(this);
      return;
    }
    const { serverName, delayId } = this.params;
    const result = await callWithRetry(calls, {
      base,
      serverName,
      delayId,
      actAs: this.#actAs(),
      action: "send",
      clock,
      log,
      budgetMs,
      signal,
    });
    const outcome = result.value;
    if (signal.aborted) {
      // Shutdown: a send that completed may still be recorded; a replaced job never is.
      const final = outcome !== undefined && outcome.kind !== "transient" &&
        outcome.kind !== "rate_limited";
      if (this.#state !== "Replaced" && final) this.#deps.onDone(this);
      return;
    }
    logSendResult(log, { base, result });
    this.#deps.onDone(this);
  }

  /**
   * App-service jobs act as their user with the as_token (not rate-limited with the
   * registration's `rate_limited: false`); without app-service mode (a restored job after a
   * configuration change) they fall back to the unauthenticated calls every job can make.
   */
  #actAs(): { user: UserId; token: Secret<"as_token"> } | undefined {
    const user = this.params.appServiceUser;
    const token = this.#deps.asToken;
    return user !== undefined && token !== undefined ? { user, token } : undefined;
  }

  async #resolveCsApi(signal: AbortSignal): Promise<CsApiBase | undefined> {
    try {
      return await this.#deps.csApi.resolve(this.params.serverName, signal);
    } catch {
      return undefined;
    }
  }

  #lookupContext(): LookupContext {
    const { lookup, clock } = this.#deps;
    return {
      lookup,
      clock,
      log: this.log,
      room: this.params.room,
      identity: this.params.identity,
      emit: (s: JobSignal) => this.signal(s),
    };
  }

  #spawn(task: Promise<void>): void {
    const tasks = this.#deps.tasks;
    const p: Promise<void> = task.then(
      () => void tasks.delete(p),
      (err) => {
        tasks.delete(p);
        this.log.error("Delegation job task failed", { err: String(err) });
      },
    );
    tasks.add(p);
  }
}

function assertNever(value: never): never {
  throw new TypeError(`unexpected value ${String(value)}`);
}
