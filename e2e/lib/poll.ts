/**
 * Polling helpers: real components run on real time, so the suite waits for conditions instead
 * of sleeping for fixed periods, with generous upper bounds (real-stack.md §11).
 *
 * @module
 */

/** Options of {@linkcode waitFor} and {@linkcode holdsFor}. */
export interface PollOptions {
  /** What is awaited, for the failure message. */
  what: string;
  /** Upper bound (waitFor) or observation window (holdsFor), in milliseconds. */
  timeoutMs: number;
  /** Pause between checks; default 250 ms. */
  intervalMs?: number;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Calls `check` until it returns a value other than `undefined`/`false`, and returns it.
 * Throws once `timeoutMs` passed, including the last error `check` threw, if any.
 */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: PollOptions,
): Promise<T> {
  const start = performance.now();
  let lastError: unknown;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() - start >= opts.timeoutMs) {
      const detail = lastError === undefined ? "" : ` (last error: ${String(lastError)})`;
      throw new Error(`Timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${detail}`);
    }
    await pause(opts.intervalMs ?? 250);
  }
}

/**
 * Checks that `check` keeps returning true for the whole window; throws at the first false.
 * Used for "the delayed event has still not fired after 30 s".
 */
export async function holdsFor(
  check: () => Promise<boolean>,
  opts: PollOptions,
): Promise<void> {
  const start = performance.now();
  while (performance.now() - start < opts.timeoutMs) {
    if (!(await check())) {
      const after = Math.round(performance.now() - start);
      throw new Error(`Condition "${opts.what}" stopped holding after ${after} ms`);
    }
    await pause(opts.intervalMs ?? 1000);
  }
  if (!(await check())) throw new Error(`Condition "${opts.what}" failed at the end`);
}

/** Elapsed-time stopwatch in milliseconds (for reporting, never asserted tightly). */
export function stopwatch(): () => number {
  const start = performance.now();
  return () => Math.round(performance.now() - start);
}
