/**
 * Ordered, retried writes of the jobs hash (delegation.md §3 "Store writes", §10.2, §10.3).
 *
 * Per field (= job key) at most one command is in flight and at most one waits behind it: a
 * newer write or delete for the same field replaces the waiting one (only the latest state
 * matters), so an `HDEL` issued after an `HSET` always lands after it, and the memory used is
 * bounded by the number of distinct fields (live jobs plus fields being deleted). Fields never
 * wait for each other: a slow command for one job delays only that job's later writes.
 *
 * A failed command is retried in the background, 1 s doubling to 30 s, until it succeeds or a
 * later write for the same field supersedes it. Without a backend (no `LIVEKIT_REDIS_URL`)
 * every write succeeds at once and nothing is kept.
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import type { WriteBackend } from "./backend.ts";

/** First background retry of a failed write. */
export const WRITE_RETRY_FIRST_MS = 1_000;
/** Longest gap between background retries. */
export const WRITE_RETRY_MAX_MS = 30_000;
/** At most one ERROR line about failing writes per this period (the rest at DEBUG). */
const ERROR_LOG_PERIOD_MS = 10_000;

/** Outcome of the first attempt of a write. */
export type WriteResult = "stored" | "failed" | "superseded";

interface Op<V> {
  kind: "set" | "del";
  value: V | undefined;
  /** Resolves with the outcome of the first attempt (or supersession before it). */
  settle: ((r: WriteResult) => void) | undefined;
}

interface Entry<V> {
  inFlight: boolean;
  next: Op<V> | undefined;
  retryTimer: Timer | undefined;
  retryMs: number;
}

/**
 * The writer in front of a {@linkcode WriteBackend}: the jobs hash (values are the encoded jobs),
 * or, with several replicas, the replica store (values are ownership-aware operations).
 */
export class JobStore<V = string> {
  readonly #backend: WriteBackend<V> | undefined;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry<V>>();
  #idleWaiters: (() => void)[] = [];
  #lastErrorLog = -Infinity;
  #suppressed = 0;
  #closed = false;

  readonly #onError: ((op: string) => void) | undefined;

  constructor(
    options: {
      backend?: WriteBackend<V>;
      clock: Clock;
      log: Logger;
      onError?: (op: string) => void;
    },
  ) {
    this.#backend = options.backend;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#onError = options.onError;
  }

  /** Whether writes go anywhere (false: in-memory only, every write is a no-op). */
  get persistent(): boolean {
    return this.#backend !== undefined;
  }

  /** The backend, if jobs are persisted. */
  get backend(): WriteBackend<V> | undefined {
    return this.#backend;
  }

  /** Fields with a write in flight or waiting (including background retries). */
  get pending(): number {
    return this.#entries.size;
  }

  /** Whether a write for `field` is in flight or waiting. */
  isPending(field: string): boolean {
    return this.#entries.has(field);
  }

  /** `HSET field value`; resolves with the outcome of its first attempt. */
  put(field: string, value: V): Promise<WriteResult> {
    return this.#enqueue(field, "set", value);
  }

  /** `HDEL field`; resolves with the outcome of its first attempt. */
  delete(field: string): Promise<WriteResult> {
    return this.#enqueue(field, "del", undefined);
  }

  /** Runs every write waiting for a background retry now (Redis answered again). */
  retryNow(): void {
    for (const [field, entry] of this.#entries) {
      if (entry.retryTimer) {
        entry.retryTimer.cancel();
        entry.retryTimer = undefined;
        entry.retryMs = WRITE_RETRY_FIRST_MS;
        this.#run(field, entry);
      }
    }
  }

  /**
   * Retries waiting writes now and waits until nothing is pending, at most `timeoutMs`.
   *
   * @returns true when every write landed.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    this.retryNow();
    if (this.#entries.size === 0) return true;
    let timer: Timer | undefined;
    let waiter: (() => void) | undefined;
    const ok = await Promise.race([
      new Promise<boolean>((resolve) => {
        waiter = () => resolve(true);
        this.#idleWaiters.push(waiter);
      }),
      new Promise<boolean>((resolve) => {
        timer = this.#clock.setTimer(timeoutMs, () => resolve(false));
      }),
    ]);
    timer?.cancel();
    this.#idleWaiters = this.#idleWaiters.filter((w) => w !== waiter);
    return ok;
  }

  /** Drops pending retries and closes the backend. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      entry.retryTimer?.cancel();
      entry.retryTimer = undefined;
      entry.next?.settle?.("failed");
    }
    if (this.#backend) await this.#backend.close();
  }

  #enqueue(field: string, kind: Op<V>["kind"], value: V | undefined): Promise<WriteResult> {
    if (!this.#backend) return Promise.resolve("stored");
    if (this.#closed) return Promise.resolve("failed");
    return new Promise((resolve) => {
      let entry = this.#entries.get(field);
      if (!entry) {
        entry = { inFlight: false, next: undefined, retryTimer: undefined, retryMs: 0 };
        this.#entries.set(field, entry);
      }
      entry.next?.settle?.("superseded");
      entry.next = { kind, value, settle: resolve };
      if (entry.retryTimer) {
        entry.retryTimer.cancel();
        entry.retryTimer = undefined;
      }
      entry.retryMs = WRITE_RETRY_FIRST_MS;
      if (!entry.inFlight) this.#run(field, entry);
    });
  }

  #run(field: string, entry: Entry<V>): void {
    const op = entry.next;
    const backend = this.#backend;
    if (!op || !backend || this.#closed) return;
    entry.next = undefined;
    entry.inFlight = true;
    const command = op.kind === "set" ? backend.set(field, op.value as V) : backend.delete(field);
    command.then(
      () => this.#finished(field, { entry, op, err: undefined }),
      (err: unknown) => this.#finished(field, { entry, op, err: err ?? "failed" }),
    );
  }

  #finished(field: string, done: { entry: Entry<V>; op: Op<V>; err: unknown }): void {
    const { entry, op, err } = done;
    entry.inFlight = false;
    op.settle?.(err === undefined ? "stored" : "failed");
    op.settle = undefined;
    if (this.#closed) return;
    if (entry.next) {
      this.#run(field, entry);
      return;
    }
    if (err !== undefined) {
      this.#logFailure(field, { op, err, retryMs: entry.retryMs });
      entry.next = op;
      const wait = entry.retryMs;
      entry.retryMs = Math.min(entry.retryMs * 2, WRITE_RETRY_MAX_MS);
      entry.retryTimer = this.#clock.setTimer(wait, () => {
        entry.retryTimer = undefined;
        this.#run(field, entry);
      });
      return;
    }
    this.#entries.delete(field);
    if (this.#entries.size === 0) { for (const w of this.#idleWaiters.splice(0)) w(); }
  }

  #logFailure(field: string, info: { op: Op<V>; err: unknown; retryMs: number }): void {
    this.#onError?.(info.op.kind === "set" ? "hset" : "hdel");
    const now = this.#clock.monotonic();
    const fields = {
      command: info.op.kind === "set" ? "HSET" : "HDEL",
      field,
      retry_in_ms: info.retryMs,
      err: describeError(info.err),
    };
    if (now - this.#lastErrorLog >= ERROR_LOG_PERIOD_MS) {
      this.#log.error("Could not write delegation job to Redis; retrying in the background", {
        ...fields,
        suppressed: this.#suppressed,
      });
      this.#lastErrorLog = now;
      this.#suppressed = 0;
    } else {
      this.#suppressed++;
      this.#log.debug("Redis write failed; retrying in the background", fields);
    }
  }
}
