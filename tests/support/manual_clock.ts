/**
 * A manual {@linkcode Clock} for tests: time moves only when the test calls `advance`.
 *
 * @module
 */
import type { Clock, Timer } from "../../lib/clock.ts";

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Deterministic clock; `random()` returns values from a fixed sequence (default 0.5). */
export class ManualClock implements Clock {
  #mono = 0;
  #wall: number;
  #seq = 0;
  #pending: Pending[] = [];
  randomValues: number[] = [];

  constructor(wallStartMs = 1_784_800_000_000) {
    this.#wall = wallStartMs;
  }

  now(): number {
    return this.#wall + this.#mono;
  }

  monotonic(): number {
    return this.#mono;
  }

  random(): number {
    return this.randomValues.length > 0 ? this.randomValues.shift()! : 0.5;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const entry: Pending = {
      at: this.#mono + Math.max(0, ms),
      seq: this.#seq++,
      fn,
      cancelled: false,
    };
    this.#pending.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = this.setTimer(ms, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      const onAbort = () => {
        timer.cancel();
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Number of timers still pending. */
  get pendingTimers(): number {
    return this.#pending.filter((p) => !p.cancelled).length;
  }

  /** Lets queued microtasks and promise chains run. */
  async flush(): Promise<void> {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
  }

  /** Advances time by `ms`, firing due timers in order and flushing promises between them. */
  async advance(ms: number): Promise<void> {
    const target = this.#mono + ms;
    await this.flush();
    for (;;) {
      const due = this.#pending
        .filter((p) => !p.cancelled && p.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.#pending = this.#pending.filter((p) => p !== due);
      this.#mono = Math.max(this.#mono, due.at);
      due.fn();
      await this.flush();
    }
    this.#mono = target;
    this.#pending = this.#pending.filter((p) => !p.cancelled);
    await this.flush();
  }
}
