/**
 * Token-bucket rate limits (http-api.md §10, D5): per client IP, per claimed server name and per
 * verified user. Buckets live in a bounded map (100 000 keys; idle full buckets are dropped
 * first, then the least recently used).
 *
 * @module
 */
import type { RateLimit } from "../config/config.ts";

/** At most this many keys per limiter. */
export const MAX_BUCKETS = 100_000;

interface Bucket {
  tokens: number;
  updated: number;
}

/** One limiter over many keys. */
export interface RateLimiter {
  /** Takes one token; returns 0 if allowed, else the milliseconds until one token is available. */
  take(key: string): number;
  readonly size: number;
}

/** Creates a limiter; `perSecond` 0 disables it (always allows). */
export function createRateLimiter(
  limit: RateLimit,
  options: { now: () => number; maxKeys?: number },
): RateLimiter {
  const { perSecond, burst } = limit;
  const maxKeys = options.maxKeys ?? MAX_BUCKETS;
  const buckets = new Map<string, Bucket>();

  function refill(b: Bucket, now: number): void {
    const elapsed = Math.max(0, now - b.updated) / 1000;
    b.tokens = Math.min(burst, b.tokens + elapsed * perSecond);
    b.updated = now;
  }

  function evict(now: number): void {
    // First drop buckets that would be full again: forgetting them changes nothing.
    for (const [key, b] of buckets) {
      if (b.tokens + (Math.max(0, now - b.updated) / 1000) * perSecond >= burst) {
        buckets.delete(key);
      }
    }
    // Still too many: drop the least recently used.
    while (buckets.size >= maxKeys) {
      const oldest = buckets.keys().next().value;
      if (oldest === undefined) break;
      buckets.delete(oldest);
    }
  }

  return {
    take(key) {
      if (perSecond <= 0) return 0;
      const now = options.now();
      let b = buckets.get(key);
      if (b) {
        buckets.delete(key);
        refill(b, now);
      } else {
        if (buckets.size >= maxKeys) evict(now);
        b = { tokens: burst, updated: now };
      }
      buckets.set(key, b);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil(((1 - b.tokens) / perSecond) * 1000));
    },
    get size() {
      return buckets.size;
    },
  };
}
