/**
 * Taking over the jobs of a replica whose lease expired (replicas.md §3 "Takeover", R3, R5):
 * list the fields it still owns, claim those that rendezvous hashing over the live replicas
 * gives to this one (compare-and-set: owner still the dead id, its lease still absent), and,
 * when some are still unclaimed one scan period after the death was first seen (their winner
 * died too, or is partitioned), claim all of them. Claimed jobs are recreated as at start-up
 * (delegation.md §10.4, remaining time honoured) and the signals that were waiting in the dead
 * replica's stream for them are replayed in order.
 *
 * Jobs in `lk-jwt:jobs` that have no owner at all (written by a single instance or by the
 * reference implementation before replica mode was switched on) are claimed the same way by
 * the first replica that starts.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import type { JobSignal } from "../delegation/state_machine.ts";
import type { WriteResult } from "../store/job_store.ts";
import { planRestore, type RestorePlan } from "../store/restore.ts";
import { JOBS_HASH, leaseKey, OWNERS_HASH, REPLICAS_ZSET, streamKey } from "./keys.ts";
import { rendezvousWinner } from "./rendezvous.ts";
import { CLAIM, LIST_OWNED, type RedisCommand, runScript } from "./scripts.ts";
import { parseEntries, type SignalEntry } from "./signals.ts";

/** Fields claimed per script call (keeps each call short for Redis). */
export const CLAIM_BATCH = 500;

/** What replica coordination needs from the job manager. */
export interface ReplicaHost {
  readonly size: number;
  readonly shuttingDown: boolean;
  fields(): string[];
  isLiveField(field: string): boolean;
  deliverField(field: string, signal: JobSignal, options?: { replayed?: boolean }): boolean;
  drop(field: string, reason: string): boolean;
  applyRestore(
    plan: RestorePlan,
    options?: { replace?: boolean; what?: string },
  ): { restored: number; fields: string[]; writes: Promise<WriteResult[]> };
}

/** Options of {@linkcode Takeover}. */
export interface TakeoverOptions {
  id: string;
  command: RedisCommand;
  clock: Clock;
  log: Logger;
  host: ReplicaHost;
  /** Releases an owner entry whose job value is missing. */
  release: (field: string) => Promise<WriteResult>;
  /** Replays a signal that was waiting in the dead replica's stream. */
  replay: (entry: SignalEntry) => Promise<void>;
  /** Jobs recreated by a takeover (metrics). */
  onTakenOver?: (jobs: number) => void;
}

/** Takeovers of dead replicas, at most one at a time per dead replica. */
export class Takeover {
  readonly #opts: TakeoverOptions;
  /** Monotonic time at which a dead replica was first seen still owning jobs. */
  readonly #firstSeen = new Map<string, number>();
  readonly #running = new Set<string>();

  constructor(options: TakeoverOptions) {
    this.#opts = options;
  }

  /**
   * Takes over (this replica's share of) the jobs of `dead`.
   *
   * @param live replicas with a live lease, this one included
   * @param periodMs one scan period: after it, jobs of `dead` nobody claimed are claimed here
   */
  async run(
    dead: string,
    live: readonly string[],
    periodMs: number,
    expiredMsAgo = 0,
  ): Promise<void> {
    const { id, command, clock, log, host } = this.#opts;
    if (this.#running.has(dead) || host.shuttingDown) return;
    this.#running.add(dead);
    try {
      const owned = await runScript(command, LIST_OWNED, [
        OWNERS_HASH,
        leaseKey(dead),
        streamKey(dead),
        REPLICAS_ZSET,
      ], [dead]);
      if (!Array.isArray(owned) || owned.length === 0) {
        // Alive again (its lease exists), or nothing left: forget it.
        this.#firstSeen.delete(dead);
        return;
      }
      const fields = owned.map(String);
      const now = clock.monotonic();
      const first = this.#firstSeen.get(dead);
      if (first === undefined) this.#firstSeen.set(dead, now);
      const all = first !== undefined && now - first >= periodMs;
      const mine = all ? fields : fields.filter((f) => rendezvousWinner(f, live) === id);
      if (mine.length === 0) return;
      log.info("Taking over delegation jobs of a replica whose lease expired", {
        replica: dead,
        expired_ms_ago: expiredMsAgo,
        jobs: mine.length,
        of: fields.length,
        share: all ? "all remaining" : "rendezvous",
      });
      for (let i = 0; i < mine.length && !host.shuttingDown; i += CLAIM_BATCH) {
        const reply = await runScript(
          command,
          CLAIM,
          [OWNERS_HASH, JOBS_HASH, leaseKey(dead), streamKey(dead)],
          [dead, id, ...mine.slice(i, i + CLAIM_BATCH)],
        );
        if (!Array.isArray(reply)) {
          log.info("Replica is alive again; leaving its jobs", { replica: dead });
          this.#firstSeen.delete(dead);
          return;
        }
        await this.adopt(reply[0], reply[1], `Took over delegation jobs of replica ${dead}`);
      }
    } finally {
      this.#running.delete(dead);
    }
  }

  /**
   * Claims jobs that have no owner at all (start-up), then recreates them.
   *
   * @param fields fields of `lk-jwt:jobs` without an entry in `lk-jwt:owners`
   */
  async claimOrphans(fields: readonly string[]): Promise<number> {
    const { id, command } = this.#opts;
    let restored = 0;
    for (let i = 0; i < fields.length; i += CLAIM_BATCH) {
      // No previous owner: its lease and stream keys are never read.
      const keys = [OWNERS_HASH, JOBS_HASH, leaseKey(""), streamKey("")];
      const reply = await runScript(command, CLAIM, keys, [
        "",
        id,
        ...fields.slice(i, i + CLAIM_BATCH),
      ]);
      if (Array.isArray(reply)) {
        restored += await this.adopt(reply[0], [], "Adopted delegation jobs without an owner");
      }
    }
    return restored;
  }

  /** Recreates claimed jobs and replays their waiting signals; returns the jobs recreated. */
  async adopt(pairs: unknown, signals: unknown, what: string): Promise<number> {
    const { clock, host } = this.#opts;
    const entries = new Map<string, string>();
    if (Array.isArray(pairs)) {
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        const field = String(pairs[i]);
        const value = String(pairs[i + 1] ?? "");
        // An owner without a job value: nothing to drive, drop the owner entry.
        if (value === "") void this.#opts.release(field);
        else entries.set(field, value);
      }
    }
    if (entries.size === 0) return 0;
    const plan = planRestore(entries, { nowMs: clock.now(), isLive: () => false });
    const { restored } = host.applyRestore(plan, { replace: true, what });
    this.#opts.onTakenOver?.(restored);
    for (const entry of parseEntries(signals)) await this.#opts.replay(entry);
    return restored;
  }
}
