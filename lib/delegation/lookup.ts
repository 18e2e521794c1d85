/**
 * SFU polling for delegation jobs (delegation.md §7): the initial lookup (phase 1), the
 * periodic sanity checks of connected jobs (phase 2) and the D9 confirmation check. Each runner
 * is owned by the job and cancelled through an `AbortSignal` (or `stop()`), which also cancels
 * the `GetParticipant` call in flight. Results go back to the job as signals.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { LiveKitIdentity, LiveKitRoomAlias } from "../ids.ts";
import { describeError, type Logger } from "../log.ts";
import type { ParticipantLookup, Presence } from "./ports.ts";
import { Backoff, retry } from "./retry.ts";
import type { JobSignal } from "./state_machine.ts";

/** Pause between the two `absent` answers that confirm a departure (delegation.md §7). */
export const CONFIRM_RECHECK_MS = 2_000;
/** Budget of the confirmation check while the SFU answers `unknown` (delegation.md §7). */
export const CONFIRM_UNKNOWN_BUDGET_MS = 10_000;

/** What every runner needs. */
export interface LookupContext {
  lookup: ParticipantLookup;
  room: LiveKitRoomAlias;
  identity: LiveKitIdentity;
  clock: Clock;
  log: Logger;
  /** Hands a signal back to the job (processed in arrival order). */
  emit: (signal: JobSignal) => void;
}

async function look(ctx: LookupContext, signal: AbortSignal): Promise<Presence> {
  try {
    return await ctx.lookup.getParticipant(ctx.room, ctx.identity, signal);
  } catch (err) {
    if (!signal.aborted) ctx.log.debug("GetParticipant failed", { err: describeError(err) });
    return "unknown";
  }
}

/**
 * Phase 1: first call now, then the retry policy with budget W. Present →
 * `ParticipantLookupSuccessful`; absent or unknown → keep trying; budget exhausted → WARN.
 */
export async function runInitialLookup(
  ctx: LookupContext,
  options: { budgetMs: number; signal: AbortSignal },
): Promise<void> {
  const { signal } = options;
  const result = await retry<Presence>(async () => {
    const p = await look(ctx, signal);
    return p === "present" ? { kind: "final", value: p } : { kind: "retry", value: p };
  }, { clock: ctx.clock, budgetMs: options.budgetMs, signal });
  if (result.end === "final") ctx.emit("ParticipantLookupSuccessful");
  else if (result.end === "budget") {
    ctx.log.warn("Participant not found on the SFU during the initial lookup", {
      attempts: result.attempts,
      last: result.value,
    });
  }
}

/**
 * Phase 2: every `intervalMs` (first check one interval after entering Connected): present →
 * continue; unknown → WARN once per streak; absent → `SFUParticipantGone` and stop.
 *
 * Timer-driven rather than an async loop: a connected job holds one timer between checks and
 * nothing else, which keeps the memory of thousands of idle connected jobs small.
 */
export class SanityChecks {
  readonly #ctx: () => LookupContext;
  readonly #intervalMs: number;
  #timer: Timer | undefined;
  #inFlight: AbortController | undefined;
  #warned = false;
  #stopped = false;

  /** `ctx` is called only when a check runs (the context is not kept between checks). */
  constructor(ctx: () => LookupContext, intervalMs: number) {
    this.#ctx = ctx;
    this.#intervalMs = intervalMs;
  }

  /** Arms the first check one interval from now. */
  start(clock: Clock): void {
    this.#timer = clock.setTimer(this.#intervalMs, () => this.#check());
  }

  /** Cancels the timer and a check in flight. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#inFlight?.abort();
    this.#inFlight = undefined;
  }

  #check(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const ctx = this.#ctx();
    const ac = new AbortController();
    this.#inFlight = ac;
    void look(ctx, ac.signal).then((p) => {
      if (this.#inFlight === ac) this.#inFlight = undefined;
      if (this.#stopped || ac.signal.aborted) return;
      if (p === "absent") {
        ctx.log.info("Participant no longer on the SFU (sanity check)");
        ctx.emit("SFUParticipantGone");
        return;
      }
      if (p === "unknown" && !this.#warned) {
        ctx.log.warn("Sanity check could not determine participant presence; keeping the job");
        this.#warned = true;
      } else if (p === "present") this.#warned = false;
      if (!this.#stopped) this.#timer = ctx.clock.setTimer(this.#intervalMs, () => this.#check());
    });
  }
}

/**
 * The D9 confirmation after `DUPLICATE_IDENTITY`/`MIGRATION`: present →
 * `ParticipantLookupSuccessful`; absent twice, 2 s apart → `ParticipantConnectionAborted`;
 * unknown → retry policy with a 10 s budget, where present confirms the participant and
 * absent or a still-unknown outcome aborts (as the reference implementation does).
 */
export async function runConfirmation(
  ctx: LookupContext,
  options: { signal: AbortSignal },
): Promise<void> {
  const { signal } = options;
  let p = await look(ctx, signal);
  if (signal.aborted) return;
  if (p === "absent") {
    try {
      await ctx.clock.sleep(CONFIRM_RECHECK_MS, signal);
    } catch {
      return;
    }
    p = await look(ctx, signal);
    if (signal.aborted) return;
  }
  if (p === "present") return ctx.emit("ParticipantLookupSuccessful");
  if (p === "absent") return ctx.emit("ParticipantConnectionAborted");
  const backoff = new Backoff(() => ctx.clock.random());
  const start = ctx.clock.monotonic();
  for (;;) {
    const wait = backoff.next();
    if (ctx.clock.monotonic() - start + wait > CONFIRM_UNKNOWN_BUDGET_MS) break;
    try {
      await ctx.clock.sleep(wait, signal);
    } catch {
      return;
    }
    p = await look(ctx, signal);
    if (signal.aborted) return;
    if (p === "present") return ctx.emit("ParticipantLookupSuccessful");
    if (p === "absent") break;
  }
  ctx.log.info("Participant presence not confirmed; treating the departure as aborted", {
    last: p,
  });
  ctx.emit("ParticipantConnectionAborted");
}
