/**
 * Ownership chores of a replica (replicas.md §3): the start-up restore of the jobs its id owns,
 * the check after a lost lease that stops jobs another replica took meanwhile, and the handling
 * of stream signals.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { describeError, type Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import { hashReply } from "../store/redis.ts";
import { planRestore } from "../store/restore.ts";
import { JOBS_HASH, OWNERS_HASH } from "./keys.ts";
import type { RedisCommand } from "./scripts.ts";
import { REPLACED, type SignalEntry } from "./signals.ts";
import type { ReplicaHost, Takeover } from "./takeover.ts";

/** Fields per `HMGET` when checking ownership after the lease was lost. */
const RECONCILE_BATCH = 1_000;

/** What these chores need. */
export interface OwnershipContext {
  id: string;
  command: RedisCommand;
  clock: Clock;
  log: Logger;
  host: ReplicaHost;
  metrics?: ServiceMetrics;
}

/** Start-up restore of this id's jobs, and of jobs without owner (claimed first). */
export async function restoreOwnJobs(
  o: OwnershipContext,
  at: { redisNow: number; takeover: Takeover },
): Promise<void> {
  const { id, command, clock, log, host } = o;
  const redisNow = at.redisNow;
  const [jobs, owners] = await Promise.all([
    command(["HGETALL", JOBS_HASH]).then(hashReply),
    command(["HGETALL", OWNERS_HASH]).then(hashReply),
  ]);
  const mine = new Map<string, string>();
  const orphans: string[] = [];
  for (const [field, value] of jobs) {
    const owner = owners.get(field);
    if (owner === id) mine.set(field, value);
    else if (owner === undefined) orphans.push(field);
  }
  const plan = planRestore(mine, { nowMs: clock.now(), isLive: (f) => host.isLiveField(f) });
  host.applyRestore(plan);
  const adopted = orphans.length > 0 ? await at.takeover.claimOrphans(orphans) : 0;
  log.info("Replica started", {
    replica: id,
    own_jobs: plan.jobs.length,
    adopted_without_owner: adopted,
    redis_time: redisNow,
  });
}

/** After the lease was lost: stop the jobs another replica drives now. */
export async function reconcile(o: OwnershipContext): Promise<void> {
  const { id, command, host } = o;
  const fields = host.fields();
  for (let i = 0; i < fields.length; i += RECONCILE_BATCH) {
    const chunk = fields.slice(i, i + RECONCILE_BATCH);
    const reply = await command(["HMGET", OWNERS_HASH, ...chunk]);
    if (!Array.isArray(reply)) continue;
    chunk.forEach((field, k) => {
      const owner = reply[k];
      // No owner: lost with a failed-over master, or finished elsewhere. Keep driving: the
      // next restart confirmation owns it again, or the homeserver answers 404 and it ends.
      if (owner === id || owner === null || owner === undefined) return;
      host.drop(field, `taken over by replica ${String(owner)}`);
    });
  }
}

/**
 * One signal from a stream (this replica's own, or a dead replica's for jobs claimed here).
 * `replaced` stops the job unless this replica owns it (again); webhook signals go to the job.
 */
export async function handleSignal(
  o: OwnershipContext,
  entry: SignalEntry,
  replayed: boolean,
): Promise<void> {
  const { id, command, clock, host, metrics, log } = o;
  if (entry.signal === REPLACED) {
    metrics?.replicaSignals.inc({ kind: "replaced" });
    let owner: unknown = id;
    try {
      owner = await command(["HGET", OWNERS_HASH, entry.field]);
    } catch (err) {
      // Keep driving: a later restart confirmation finds out (ownership-checked write).
      log.debug("Could not check a replaced job's owner", { err: describeError(err) });
    }
    if (owner !== id) host.drop(entry.field, `replaced on replica ${String(owner)}`);
    return;
  }
  metrics?.replicaSignals.inc({ kind: replayed ? "replayed" : "webhook" });
  if (!replayed && entry.sentAtMs !== undefined) {
    metrics?.replicaSignalLatency.observe(
      undefined,
      Math.max(0, clock.now() - entry.sentAtMs) / 1000,
    );
  }
  host.deliverField(entry.field, entry.signal, { replayed });
}

/** `ZRANGE … WITHSCORES` as (id, expiry). */
export function parsePeers(raw: unknown): { id: string; expiry: number }[] {
  const out: { id: string; expiry: number }[] = [];
  if (!Array.isArray(raw)) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    out.push({ id: String(raw[i]), expiry: Number(raw[i + 1]) });
  }
  return out;
}
