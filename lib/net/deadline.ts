/**
 * Whole-request deadlines of the outbound client (openid-and-discovery.md §8.5) on one shared
 * clock timer.
 *
 * Every outbound request has a deadline, and at the delayed-event rate (one restart per
 * participant every 0.8·T) a platform timer per request costs far more than the request itself:
 * each armed-then-cancelled timer lingers in the runtime until it would have fired. A
 * {@linkcode DeadlineSet} keeps the deadlines of all requests in flight and arms one clock timer
 * for the earliest; when it fires, expired requests are ended and the timer is armed again for
 * the next one. A finished request only leaves the set (no timer is cancelled), so under steady
 * traffic the timer wakes up about once per timeout period. Deadlines fire exactly when due
 * (never early); tests drive them with a manual clock.
 *
 * A {@linkcode RequestDeadline} also follows the caller's `AbortSignal` and creates its own
 * `AbortSignal` only when a step needs one (`fetch`, a DNS query): the built-in HTTP/1.1 path
 * ends a request by closing its connection through a hook instead.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";

/** One pending deadline (see {@linkcode DeadlineSet.add}). */
export interface DeadlineEntry {
  readonly at: number;
  readonly expire: () => void;
}

/** Deadlines of many requests behind one clock timer. */
export class DeadlineSet {
  readonly #clock: Clock;
  readonly #entries = new Set<DeadlineEntry>();
  #timer: Timer | undefined;
  #armedAt = Infinity;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Number of deadlines pending. */
  get size(): number {
    return this.#entries.size;
  }

  /** Starts the deadline of one request; `caller` aborts it early (kind "aborted"). */
  start(timeoutMs: number, caller?: AbortSignal): RequestDeadline {
    return new RequestDeadline(this, { timeoutMs, caller });
  }

  /** Runs `expire` once `ms` from now unless the returned entry is removed first. */
  add(ms: number, expire: () => void): DeadlineEntry {
    const entry = { at: this.#clock.monotonic() + Math.max(0, ms), expire };
    this.#entries.add(entry);
    if (entry.at < this.#armedAt) this.#arm(entry.at);
    return entry;
  }

  /** Forgets a deadline (its request finished). The shared timer is left as it is. */
  remove(entry: DeadlineEntry): void {
    this.#entries.delete(entry);
  }

  /** Drops every deadline without running it and stops the timer. */
  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#armedAt = Infinity;
    this.#entries.clear();
  }

  #arm(at: number): void {
    this.#timer?.cancel();
    this.#armedAt = at;
    this.#timer = this.#clock.setTimer(at - this.#clock.monotonic(), () => this.#fire());
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = this.#clock.monotonic();
    const due: DeadlineEntry[] = [];
    for (const entry of this.#entries) if (entry.at <= now) due.push(entry);
    for (const entry of due) {
      this.#entries.delete(entry);
      entry.expire();
    }
    let next = Infinity;
    for (const entry of this.#entries) if (entry.at < next) next = entry.at;
    if (next < this.#armedAt && next !== Infinity) this.#arm(next);
  }
}

/** Options of {@linkcode RequestDeadline}. */
export interface RequestDeadlineOptions {
  timeoutMs: number;
  /** The caller's signal: aborting it ends the request as "aborted". */
  caller?: AbortSignal;
}

/** The deadline of one request: expiry or the caller's abort end it. */
export class RequestDeadline {
  readonly #set: DeadlineSet;
  readonly #entry: DeadlineEntry;
  readonly #caller: AbortSignal | undefined;
  #onCallerAbort: (() => void) | undefined;
  #controller: AbortController | undefined;
  #hook: (() => void) | undefined;
  #timedOut = false;
  #callerAborted = false;

  constructor(set: DeadlineSet, options: RequestDeadlineOptions) {
    this.#set = set;
    this.#caller = options.caller;
    this.#entry = set.add(options.timeoutMs, () => this.#end(true));
    if (this.#caller?.aborted) this.#end(false);
    else if (this.#caller) {
      this.#onCallerAbort = () => this.#end(false);
      this.#caller.addEventListener("abort", this.#onCallerAbort, { once: true });
    }
  }

  /** The deadline passed before the request finished. */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** The caller aborted first. */
  get callerAborted(): boolean {
    return this.#callerAborted;
  }

  /** Either of the two: the request must stop. */
  get ended(): boolean {
    return this.#timedOut || this.#callerAborted;
  }

  /** A signal that aborts when the request ends (created on first use). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.ended) this.#controller.abort(this.#reason());
    }
    return this.#controller.signal;
  }

  /**
   * Sets the action that stops the step in progress (closing its connection); it runs at once
   * when the request has already ended. `undefined` clears it.
   */
  onEnd(hook: (() => void) | undefined): void {
    this.#hook = hook;
    if (hook && this.ended) hook();
  }

  /** The request finished: forget the deadline and the caller's signal. */
  finish(): void {
    this.#set.remove(this.#entry);
    this.#hook = undefined;
    if (this.#onCallerAbort) this.#caller?.removeEventListener("abort", this.#onCallerAbort);
    this.#onCallerAbort = undefined;
  }

  #reason(): unknown {
    return this.#timedOut
      ? new DOMException("request timed out", "TimeoutError")
      : this.#caller?.reason;
  }

  #end(timedOut: boolean): void {
    if (this.ended) return;
    if (timedOut) this.#timedOut = true;
    else this.#callerAborted = true;
    this.#set.remove(this.#entry);
    this.#controller?.abort(this.#reason());
    const hook = this.#hook;
    this.#hook = undefined;
    hook?.();
  }
}
