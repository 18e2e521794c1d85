/**
 * Rendezvous (highest-random-weight) hashing: which live replica takes over a job of a dead one
 * (replicas.md R5). Every survivor computes the same winner from the same list of live replicas
 * without talking to the others, the jobs of the dead replica spread evenly, and a replica that
 * joins or leaves moves only the jobs it wins or held.
 *
 * The weight of (replica, field) is FNV-1a over both, finished with MurmurHash3's 32-bit mixer
 * (FNV alone varies too little in its high bits for similar strings). Not cryptographic: job
 * fields are not secret and a skewed split only costs balance, never correctness.
 *
 * @module
 */

function weight(replica: string, field: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < replica.length; i++) {
    h = Math.imul(h ^ replica.charCodeAt(i), 0x01000193);
  }
  h = Math.imul(h ^ 0x0a, 0x01000193);
  for (let i = 0; i < field.length; i++) {
    h = Math.imul(h ^ field.charCodeAt(i), 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The replica that wins `field`: highest weight, ties to the smaller id.
 *
 * @param replicas live replica ids (non-empty)
 */
export function rendezvousWinner(field: string, replicas: readonly string[]): string {
  let best = "";
  let bestWeight = -1;
  for (const r of replicas) {
    const w = weight(r, field);
    if (w > bestWeight || (w === bestWeight && r < best)) {
      best = r;
      bestWeight = w;
    }
  }
  return best;
}
