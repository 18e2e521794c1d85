/**
 * One timer for all jobs: a min-heap of due times on top of the injected {@linkcode Clock}
 * (delegation.md §13 timing, docs/performance.md). A platform timer costs about 640 bytes of
 * heap in Deno; a connected job needs two (restart and sanity check), so 10 000 jobs would hold
 * 20 000 of them. Here each pending timer is one small heap entry, and a single underlying clock
 * timer is armed for the earliest one.
 *
 * The scheduler is itself a {@linkcode Clock} (time and randomness pass through), so jobs,
 * retries and lookups are written against the ordinary interface and tests keep using a manual
 * clock underneath. Cancelled entries are dropped lazily (when popped, or by a compaction when
 * they outnumber the live ones); when nothing is pending the underlying timer is cancelled, so
 * an idle scheduler holds no timer at all.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";

class Entry implements Timer {
  readonly at: number;
  readonly seq: number;
  fn: (() => void) | undefined;
  readonly #owner: Scheduler;

  constructor(owner: Scheduler, at: number, seq: number, fn: () => void) {
    this.#owner = owner;
    this.at = at;
    this.seq = seq;
    this.fn = fn;
  }

  cancel(): void {
    if (this.fn === undefined) return;
    this.fn = undefined;
    this.#owner.cancelled();
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Many cheap timers on one clock timer. */
export class Scheduler implements Clock {
  readonly #clock: Clock;
  #heap: Entry[] = [];
  #live = 0;
  #seq = 0;
  #armed: { at: number; timer: Timer } | undefined;
  #closed = false;
  readonly #onError: (err: unknown) => void;
  readonly #resolutionMs: number;

  /**
   * `resolutionMs` coalesces wake-ups: the underlying timer is armed for the end of the
   * `resolutionMs` slot that contains the earliest due time, so callbacks may run up to that
   * much late and the process wakes at most once per slot. `onError` receives exceptions thrown
   * by callbacks (the other callbacks still run).
   */
  constructor(
    clock: Clock,
    options: { resolutionMs?: number; onError?: (err: unknown) => void } = {},
  ) {
    this.#clock = clock;
    this.#resolutionMs = options.resolutionMs ?? 0;
    this.#onError = options.onError ?? ((err) => {
      queueMicrotask(() => {
        throw err;
      });
    });
  }

  /** Timers still pending. */
  get pending(): number {
    return this.#live;
  }

  now(): number {
    return this.#clock.now();
  }

  monotonic(): number {
    return this.#clock.monotonic();
  }

  random(): number {
    return this.#clock.random();
  }

  setTimer(ms: number, fn: () => void): Timer {
    const entry = new Entry(this, this.#clock.monotonic() + Math.max(0, ms), this.#seq++, fn);
    if (this.#closed) {
      entry.fn = undefined;
      return entry;
    }
    this.#push(entry);
    this.#live++;
    this.#arm();
    return entry;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      if (this.#closed) {
        reject(new Error("scheduler closed"));
        return;
      }
      const onAbort = () => {
        timer.cancel();
        reject(signal?.reason);
      };
      const timer = this.setTimer(ms, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Drops every pending timer and the underlying one; later timers never fire. */
  close(): void {
    this.#closed = true;
    for (const e of this.#heap) e.fn = undefined;
    this.#heap = [];
    this.#live = 0;
    this.#armed?.timer.cancel();
    this.#armed = undefined;
  }

  /** Bookkeeping of {@linkcode Entry.cancel}. */
  cancelled(): void {
    this.#live--;
    if (this.#live === 0) {
      this.#heap = [];
      this.#armed?.timer.cancel();
      this.#armed = undefined;
    } else if (this.#heap.length > 1024 && this.#heap.length > 2 * this.#live) {
      this.#compact();
    }
  }

  #arm(): void {
    const head = this.#heap[0];
    if (!head) return;
    const r = this.#resolutionMs;
    const at = r > 0 ? Math.ceil(head.at / r) * r : head.at;
    if (this.#armed && this.#armed.at <= at) return;
    this.#armed?.timer.cancel();
    this.#armed = {
      at,
      timer: this.#clock.setTimer(at - this.#clock.monotonic(), () => this.#fire()),
    };
  }

  #fire(): void {
    this.#armed = undefined;
    const now = this.#clock.monotonic();
    for (let head = this.#heap[0]; head && head.at <= now; head = this.#heap[0]) {
      this.#pop();
      const fn = head.fn;
      if (fn === undefined) continue;
      head.fn = undefined;
      this.#live--;
      try {
        fn();
      } catch (err) {
        this.#onError(err);
      }
    }
    if (this.#live === 0) this.#heap = [];
    else this.#arm();
  }

  #compact(): void {
    const live = this.#heap.filter((e) => e.fn !== undefined);
    this.#heap = [];
    for (const e of live) this.#push(e);
  }

  #push(entry: Entry): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (!last || heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
      if (!before(heap[c]!, last)) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = last;
  }
}
