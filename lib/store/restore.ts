/**
 * The restore rules of delegation.md §10.4 as a pure planning step: given the `HGETALL` result,
 * the wall-clock time and which fields belong to live jobs, decide which jobs to recreate, which
 * fields to delete and which entries to move to the field name we would write.
 *
 * 1. (the caller reads the hash)
 * 2. a value that is not JSON or not of the §10.1 format is skipped and left alone;
 * 3. `DelayTimeout` ≤ 0 → delete;
 * 4. remaining = `RestartedAt` + T − now ≤ 0 → delete;
 * 5. key = (`LiveKitRoom`, `LiveKitIdentity`); an entry under a non-canonical field moves to
 *    ours; of two entries with the same key the later `RestartedAt` wins, the other is deleted;
 * 6. the winner becomes a job waiting for its participant, deadline `RestartedAt` + T.
 *
 * Merging (restore after a late Redis connection, §10.3): a live job or a pending write for a
 * field wins over the stored entry, and such a field is never touched by the plan.
 *
 * @module
 */
import { decodeValue, encodeField, encodeValue, nsToMs, type StoredJob } from "./codec.ts";

/** A job to recreate. */
export interface RestoredEntry {
  /** Canonical field of its key. */
  field: string;
  job: StoredJob;
  /** T in milliseconds. */
  delayTimeoutMs: number;
  /** `RestartedAt` + T − now, > 0. */
  remainingMs: number;
}

/** What the restore does. */
export interface RestorePlan {
  jobs: RestoredEntry[];
  /** `HSET` of moved entries (before the deletes of their old fields). */
  puts: { field: string; value: string }[];
  /** `HDEL`s: expired, invalid timeout, duplicates, old names of moved entries. */
  deletes: string[];
  /** Fields whose value could not be read (WARN, left alone). */
  invalid: { field: string; reason: string }[];
  /** Fields skipped because a live job owns the key. */
  live: string[];
}

/**
 * Plans the restore.
 *
 * @param entries the hash as read, field → value
 * @param options `nowMs` wall clock; `isLive(field)` true for fields owned by live jobs or
 * pending writes
 */
export function planRestore(
  entries: ReadonlyMap<string, string>,
  options: { nowMs: number; isLive: (field: string) => boolean },
): RestorePlan {
  const plan: RestorePlan = { jobs: [], puts: [], deletes: [], invalid: [], live: [] };
  const groups = new Map<string, { field: string; job: StoredJob; remainingMs: number }[]>();
  const drop = (field: string) => {
    if (!options.isLive(field)) plan.deletes.push(field);
  };
  for (const [field, raw] of entries) {
    let job: StoredJob;
    try {
      job = decodeValue(raw);
    } catch (err) {
      plan.invalid.push({ field, reason: err instanceof Error ? err.message : String(err) });
      continue;
    }
    if (job.delayTimeoutNs <= 0n) {
      drop(field);
      continue;
    }
    const remainingMs = job.restartedAtMs + nsToMs(job.delayTimeoutNs) - options.nowMs;
    if (remainingMs <= 0) {
      drop(field);
      continue;
    }
    const canonical = encodeField(job.room, job.identity);
    const group = groups.get(canonical) ?? [];
    group.push({ field, job, remainingMs });
    groups.set(canonical, group);
  }
  for (const [canonical, group] of groups) {
    if (options.isLive(canonical)) {
      plan.live.push(canonical);
      for (const e of group) if (e.field !== canonical) drop(e.field);
      continue;
    }
    group.sort((a, b) =>
      b.job.restartedAtMs - a.job.restartedAtMs ||
      Number(b.field === canonical) - Number(a.field === canonical)
    );
    const [winner, ...losers] = group as [(typeof group)[0], ...typeof group];
    for (const loser of losers) if (loser.field !== canonical) drop(loser.field);
    if (winner.field !== canonical) {
      plan.puts.push({
        field: canonical,
        value: encodeValue({
          delayId: winner.job.delayId,
          delayTimeoutNs: winner.job.delayTimeoutNs,
          serverName: winner.job.serverName,
          room: winner.job.room,
          identity: winner.job.identity,
          restartedAt: winner.job.restartedAtText,
          appServiceUser: winner.job.appServiceUser,
        }),
      });
      drop(winner.field);
    }
    plan.jobs.push({
      field: canonical,
      job: winner.job,
      delayTimeoutMs: nsToMs(winner.job.delayTimeoutNs),
      remainingMs: winner.remainingMs,
    });
  }
  return plan;
}
