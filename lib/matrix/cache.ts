/**
 * Bounded caches and in-flight coalescing for discovery and verification results
 * (openid-and-discovery.md §5: 10 000 entries, least recently used evicted; concurrent requests
 * for one key share one fetch).
 *
 * Entries carry their own timestamps; expiry rules live with the callers because every cache
 * in §5 and §9 has different ones (stale reuse, back-off, separate negative lifetimes).
 *
 * @module
 */

/** Default bound of every cache (openid-and-discovery.md §5). */
export const DEFAULT_CACHE_ENTRIES = 10_000;

/** A size-bounded map that evicts the least recently used entry. */
export class LruCache<K, V> {
  readonly #max: number;
  readonly #map = new Map<K, V>();

  constructor(maxEntries: number = DEFAULT_CACHE_ENTRIES) {
    if (!(maxEntries >= 1)) throw new RangeError(`Cannot create cache: maxEntries ${maxEntries}`);
    this.#max = maxEntries;
  }

  /** The value for `key`, marking it as most recently used. */
  get(key: K): V | undefined {
    if (!this.#map.has(key)) return undefined;
    const value = this.#map.get(key) as V;
    this.#map.delete(key);
    this.#map.set(key, value);
    return value;
  }

  /** The value for `key` without touching its recency. */
  peek(key: K): V | undefined {
    return this.#map.get(key);
  }

  /**
   * Stores `value`, evicting the least recently used entries beyond the bound. A new key (the
   * common case: single-use OpenID tokens) costs one insert and at most one eviction, with no
   * delete-and-reinsert of its own.
   */
  set(key: K, value: V): void {
    const map = this.#map;
    if (map.has(key)) {
      map.delete(key);
    } else if (map.size >= this.#max) {
      for (const oldest of map.keys()) {
        map.delete(oldest);
        if (map.size < this.#max) break;
      }
    }
    map.set(key, value);
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}

/** Runs at most one task per key at a time; concurrent callers share its promise. */
export class InFlight<K, V> {
  readonly #running = new Map<K, Promise<V>>();

  /** Joins the running task for `key`, or starts `task` and shares it until it settles. */
  run(key: K, task: () => Promise<V>): Promise<V> {
    const running = this.#running.get(key);
    if (running) return running;
    const promise = (async () => {
      try {
        return await task();
      } finally {
        this.#running.delete(key);
      }
    })();
    this.#running.set(key, promise);
    return promise;
  }

  /** Whether a task for `key` is running (a new caller would join it). */
  has(key: K): boolean {
    return this.#running.has(key);
  }

  /** Number of tasks running. */
  get size(): number {
    return this.#running.size;
  }
}

/**
 * Resolves with `promise`, or rejects with the signal's reason as soon as `signal` aborts
 * (the shared task itself keeps running for the other callers).
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
