/**
 * The retry policy of delegation.md §5, used for `restart`, `send`, the initial participant
 * lookup and the D9 confirmation check:
 *
 * - the first attempt runs immediately;
 * - the nominal interval I starts at 1 s, grows ×1.5 after each wait and is capped at 60 s;
 * - each wait is uniform in [0.5·I, 1.5·I];
 * - a retry hint (429) replaces the next wait (floor 1 s) and resets I to 1 s;
 * - budget B: before each wait, if (time since the first attempt + next wait) > B, give up at
 *   once with the last outcome (no extra attempt at the deadline);
 * - a permanent outcome or cancellation ends the retries.
 *
 * Time and randomness come from the injected {@linkcode Clock} (monotonic time).
 *
 * @module
 */
import type { Clock } from "../clock.ts";

/** First nominal interval. */
export const INITIAL_INTERVAL_MS = 1_000;
/** Growth of the nominal interval after each wait. */
export const INTERVAL_FACTOR = 1.5;
/** Cap of the nominal interval. */
export const MAX_INTERVAL_MS = 60_000;
/** Smallest wait a retry hint may ask for (delegation.md §4: no tight loops on `Retry-After: 0`). */
export const MIN_HINT_MS = 1_000;

/** The sequence of waits between attempts. */
export class Backoff {
  #interval = INITIAL_INTERVAL_MS;
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  /** Current nominal interval I. */
  get interval(): number {
    return this.#interval;
  }

  /**
   * The next wait: the hint (floored at 1 s, I reset to 1 s) or a jittered I (then I grows).
   */
  next(hintMs?: number): number {
    if (hintMs !== undefined) {
      this.#interval = INITIAL_INTERVAL_MS;
      return Math.max(hintMs, MIN_HINT_MS);
    }
    const i = this.#interval;
    this.#interval = Math.min(i * INTERVAL_FACTOR, MAX_INTERVAL_MS);
    return i * (0.5 + this.#random());
  }
}

/** What one attempt decided. */
export type Attempt<T> =
  | { kind: "final"; value: T }
  | { kind: "retry"; value: T; hintMs?: number };

/** How a retry loop ended. */
export interface RetryResult<T> {
  /** The last outcome (undefined only when cancelled before the first attempt finished). */
  value: T | undefined;
  /** `final`: permanent or successful outcome; `budget`: gave up; `aborted`: cancelled. */
  end: "final" | "budget" | "aborted";
  attempts: number;
}

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  clock: Clock;
  /** Budget B in milliseconds, measured from the first attempt. */
  budgetMs: number;
  signal?: AbortSignal;
}

/**
 * Runs `attempt` until it is final, the budget is used up or `signal` aborts.
 *
 * @example
 * ```ts
 * const r = await retry(async () => ({ kind: "final", value: 1 }), { clock, budgetMs: 10_000 });
 * ```
 */
export async function retry<T>(
  attempt: (n: number) => Promise<Attempt<T>>,
  options: RetryOptions,
): Promise<RetryResult<T>> {
  const { clock, budgetMs, signal } = options;
  const backoff = new Backoff(() => clock.random());
  const start = clock.monotonic();
  let last: T | undefined;
  for (let n = 1;; n++) {
    if (signal?.aborted) return { value: last, end: "aborted", attempts: n - 1 };
    const outcome = await attempt(n);
    last = outcome.value;
    if (signal?.aborted) return { value: last, end: "aborted", attempts: n };
    if (outcome.kind === "final") return { value: last, end: "final", attempts: n };
    const wait = backoff.next(outcome.hintMs);
    if (clock.monotonic() - start + wait > budgetMs) {
      return { value: last, end: "budget", attempts: n };
    }
    try {
      await clock.sleep(wait, signal);
    } catch {
      return { value: last, end: "aborted", attempts: n };
    }
  }
}
