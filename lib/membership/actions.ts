/**
 * The retry of membership enforcement: bounded jittered retry of the SFU actions
 * (app-service.md §8: `RemoveParticipant`/`DeleteRoom` retried with backoff, "not found" is
 * success).
 *
 * @module
 */
import type { Clock } from "../clock.ts";

/** Attempts of one SFU action before it is given up (and logged, counted). */
export const ACTION_ATTEMPTS = 5;
/** First retry delay; doubled each time, ±50 % jitter, at most {@linkcode ACTION_MAX_DELAY_MS}. */
export const ACTION_FIRST_DELAY_MS = 500;
export const ACTION_MAX_DELAY_MS = 8_000;

/**
 * Runs `action` until it resolves, at most {@linkcode ACTION_ATTEMPTS} times, sleeping a jittered,
 * doubling delay between attempts. "Not found" is the action's own business: it resolves
 * (`false`) rather than rejecting, so it is never retried.
 *
 * @throws the last error, or the signal's reason once aborted.
 */
export async function withRetry<T>(
  action: () => Promise<T>,
  options: { clock: Clock; signal: AbortSignal; onRetry?: (attempt: number, err: unknown) => void },
): Promise<T> {
  let delay = ACTION_FIRST_DELAY_MS;
  for (let attempt = 1;; attempt++) {
    options.signal.throwIfAborted();
    try {
      return await action();
    } catch (err) {
      if (attempt >= ACTION_ATTEMPTS || options.signal.aborted) throw err;
      options.onRetry?.(attempt, err);
      const jittered = delay * (0.5 + options.clock.random());
      await options.clock.sleep(Math.min(ACTION_MAX_DELAY_MS, jittered), options.signal);
      delay = Math.min(ACTION_MAX_DELAY_MS, delay * 2);
    }
  }
}
