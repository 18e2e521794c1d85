/**
 * Redis keys of replica coordination (replicas.md §3, R6). The reference's jobs hash
 * `lk-jwt:jobs` keeps its exact format; everything replicas need lives beside it under the same
 * `lk-jwt:` prefix:
 *
 * | Key | Type | Content |
 * | --- | --- | --- |
 * | `lk-jwt:owners` | hash | job field (the same field as in `lk-jwt:jobs`) → replica id |
 * | `lk-jwt:replicas` | sorted set | replica id, score = lease expiry (Redis time, ms) |
 * | `lk-jwt:replica:<id>` | string, `PX` = lease | the holder's per-process token |
 * | `lk-jwt:signals:<id>` | stream | signals for the jobs `<id>` drives (`f` field, `s` signal, `t` sent at) |
 *
 * @module
 */
export { JOBS_HASH } from "../store/codec.ts";

/** Job field → replica id of the replica that drives the job. */
export const OWNERS_HASH = "lk-jwt:owners";
/** Every replica that ever held a lease and may still own jobs; score = lease expiry (ms). */
export const REPLICAS_ZSET = "lk-jwt:replicas";
/** Prefix of a replica's liveness lease. */
export const LEASE_PREFIX = "lk-jwt:replica:";
/** Prefix of a replica's signal stream. */
export const STREAM_PREFIX = "lk-jwt:signals:";
/** Approximate length cap of a signal stream (`XADD … MAXLEN ~`). */
export const STREAM_MAXLEN = 10_000;

/** The lease key of a replica. */
export function leaseKey(id: string): string {
  return LEASE_PREFIX + id;
}

/** The signal stream of a replica. */
export function streamKey(id: string): string {
  return STREAM_PREFIX + id;
}
