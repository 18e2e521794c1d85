/**
 * Job writes with several replicas (replicas.md §3 "Ownership", R2, R6): the same ordered,
 * retried per-field writer as a single instance ({@linkcode JobStore}), with operations that
 * keep `lk-jwt:owners` in step with `lk-jwt:jobs`:
 *
 * | Manager write | Operation |
 * | --- | --- |
 * | registration, restore correction | `own`: job and owner written together; a previous owner that is another replica is told to drop its job |
 * | successful restart | `touch`: the job written only while this replica owns it, batched |
 * | job done | `release`: job and owner deleted, only while this replica owns it |
 *
 * A restart whose field this replica no longer owns (taken over, or replaced on another
 * replica) reports the field through `onLost`, and the job is stopped here without sending.
 * A restart of a job whose registration has not reached Redis yet is sent as `own` (the
 * registration happened here, so the newest value takes ownership).
 *
 * Restart confirmations are collected for up to {@linkcode TOUCH_BATCH_MS} and sent as one
 * script: one `HMGET` and one `HSET` for the whole batch instead of one command per restart,
 * which keeps Redis well under its budget with tens of thousands of jobs (docs/performance.md).
 * `RestartedAt` in Redis then lags the real restart by at most that much, which only makes a
 * taker-over's remaining time slightly shorter (the safe side).
 *
 * @module
 */
import type { Clock, Timer } from "../clock.ts";
import type { Logger } from "../log.ts";
import type { WriteBackend } from "../store/backend.ts";
import { JobStore, type WriteResult } from "../store/job_store.ts";
import type { JobWrites, WriteCause } from "../delegation/manager.ts";
import { JOBS_HASH, OWNERS_HASH, STREAM_MAXLEN, STREAM_PREFIX } from "./keys.ts";
import { OWN, type RedisCommand, RELEASE_JOB, runScript, TOUCH } from "./scripts.ts";

/** Longest wait of a restart confirmation before its batch is sent. */
export const TOUCH_BATCH_MS = 100;
/** Largest batch (Lua's `unpack` has a stack limit of a few thousand values). */
export const TOUCH_BATCH_MAX = 1_000;

/** An ownership-aware write of one job value. */
export interface ReplicaOp {
  kind: "own" | "touch";
  value: string;
}

interface Pending {
  value: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Options of {@linkcode ReplicaWrites}. */
export interface ReplicaWritesOptions {
  /** This replica's id. */
  id: string;
  command: RedisCommand;
  clock: Clock;
  log: Logger;
  /** A restart found the job owned by another replica now. */
  onLost: (field: string) => void;
  /** A registration took the field from another replica (informational). */
  onTookFrom?: (field: string, previous: string) => void;
  /** A Redis command failed (metrics). */
  onError?: (op: string) => void;
  /** Extra work when the writer closes (the connection). */
  close?: () => Promise<void>;
  batchMs?: number;
}

/** The scripts behind {@linkcode ReplicaWrites}. */
class ReplicaBackend implements WriteBackend<ReplicaOp> {
  readonly #opts: ReplicaWritesOptions;
  readonly #confirmed: (field: string) => void;
  #batch = new Map<string, Pending>();
  #timer: Timer | undefined;

  constructor(options: ReplicaWritesOptions, confirmed: (field: string) => void) {
    this.#opts = options;
    this.#confirmed = confirmed;
  }

  async set(field: string, op: ReplicaOp): Promise<void> {
    if (op.kind === "touch") return await this.#touch(field, op.value);
    const { id, clock, command } = this.#opts;
    const previous = await runScript(command, OWN, [JOBS_HASH, OWNERS_HASH], [
      field,
      op.value,
      id,
      STREAM_PREFIX,
      String(STREAM_MAXLEN),
      String(Math.round(clock.now())),
    ]);
    this.#confirmed(field);
    if (typeof previous === "string" && previous !== id) {
      this.#opts.onTookFrom?.(field, previous);
    }
  }

  async delete(field: string): Promise<void> {
    await runScript(this.#opts.command, RELEASE_JOB, [JOBS_HASH, OWNERS_HASH], [
      field,
      this.#opts.id,
    ]);
  }

  close(): Promise<void> {
    this.#timer?.cancel();
    this.#timer = undefined;
    const batch = this.#batch;
    this.#batch = new Map();
    for (const p of batch.values()) p.reject(new Error("store closed"));
    return this.#opts.close?.() ?? Promise.resolve();
  }

  #touch(field: string, value: string): Promise<void> {
    return new Promise((resolve, reject) => {
      // JobStore keeps one operation per field in flight, so a field is in one batch at most.
      this.#batch.set(field, { value, resolve, reject });
      if (this.#batch.size >= TOUCH_BATCH_MAX) this.#send();
      else {
        this.#timer ??= this.#opts.clock.setTimer(
          this.#opts.batchMs ?? TOUCH_BATCH_MS,
          () => this.#send(),
        );
      }
    });
  }

  #send(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const batch = this.#batch;
    if (batch.size === 0) return;
    this.#batch = new Map();
    const args = [this.#opts.id];
    for (const [field, p] of batch) args.push(field, p.value);
    runScript(this.#opts.command, TOUCH, [JOBS_HASH, OWNERS_HASH], args).then(
      (lost) => {
        const gone = new Set(Array.isArray(lost) ? lost.map(String) : []);
        for (const [field, p] of batch) {
          p.resolve();
          if (gone.has(field)) this.#opts.onLost(field);
        }
      },
      (err) => {
        for (const p of batch.values()) p.reject(err);
      },
    );
  }
}

/** The manager's {@linkcode JobWrites} in replica mode. */
export class ReplicaWrites implements JobWrites {
  readonly persistent = true;
  readonly #store: JobStore<ReplicaOp>;
  /** Fields whose registration has not reached Redis yet. */
  readonly #unconfirmed = new Set<string>();

  constructor(options: ReplicaWritesOptions) {
    const backend = new ReplicaBackend(options, (field) => this.#unconfirmed.delete(field));
    this.#store = new JobStore<ReplicaOp>({
      backend,
      clock: options.clock,
      log: options.log,
      onError: (op) => options.onError?.(op === "hset" ? "own" : "release"),
    });
  }

  put(field: string, value: string, cause: WriteCause): Promise<WriteResult> {
    const kind = cause === "restart" && !this.#unconfirmed.has(field) ? "touch" : "own";
    if (kind === "own") this.#unconfirmed.add(field);
    return this.#store.put(field, { kind, value });
  }

  delete(field: string): Promise<WriteResult> {
    this.#unconfirmed.delete(field);
    return this.#store.delete(field);
  }

  isPending(field: string): boolean {
    return this.#store.isPending(field);
  }

  /** Fields with a write in flight or waiting. */
  get pending(): number {
    return this.#store.pending;
  }

  flush(timeoutMs: number): Promise<boolean> {
    return this.#store.flush(timeoutMs);
  }

  /** Runs writes waiting for a background retry now (Redis answered again). */
  retryNow(): void {
    this.#store.retryNow();
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}
