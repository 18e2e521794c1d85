/**
 * The participants membership enforcement watches (app-service.md §8): for every token issued
 * in app-service mode (and by the standalone endpoints for users of the own homeserver), who it
 * was for (Matrix room, user) and where it lets them in (LiveKit room, identity).
 *
 * An entry is `waiting` from the moment the token is issued until the SFU reports the join, and
 * again after the SFU reports the leave; `connected` in between. Waiting entries are never acted
 * upon by the sweep or a pushed leave (nobody is on the SFU to remove); they are kept only while
 * the token could still be used (`expiresAt`), so that a later join with that token is checked
 * again (MSC4195 "re-check membership when the SFU reports a join"). Connected entries stay
 * until the SFU reports the leave, whatever the token's expiry (LiveKit refreshes the tokens of
 * connected participants itself).
 *
 * Memory is bounded: at most {@linkcode MAX_TRACKED} entries; when full, the oldest waiting
 * entry is forgotten first, then the oldest entry of all.
 *
 * @module
 */
import type { LiveKitIdentity, LiveKitRoomAlias, UserId } from "../ids.ts";

/** Most entries held (about 570 bytes each, so about 55 MiB when full; scripts/bench_membership.ts). */
export const MAX_TRACKED = 100_000;

/** Where a tracked participant is. */
export type TrackedState = "waiting" | "connected";

/** One tracked token holder. */
export interface TrackedParticipant {
  /** The Matrix room the token was issued for. */
  roomId: string;
  user: UserId;
  room: LiveKitRoomAlias;
  identity: LiveKitIdentity;
  state: TrackedState;
  /** Wall-clock ms after which the token can no longer be used to join. */
  expiresAt: number;
}

/** The key of a participant on the SFU: (LiveKit room, identity). */
export function participantKey(room: string, identity: string): string {
  return `${room}\0${identity}`;
}

/** The tracked participants, indexed by SFU key and by Matrix room. */
export class TrackedParticipants {
  readonly #byKey = new Map<string, TrackedParticipant>();
  readonly #byRoom = new Map<string, Set<string>>();
  readonly #max: number;

  constructor(max = MAX_TRACKED) {
    this.#max = max;
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Entries by state, for metrics. */
  counts(): Record<TrackedState, number> {
    const out = { waiting: 0, connected: 0 };
    for (const p of this.#byKey.values()) out[p.state]++;
    return out;
  }

  get(room: string, identity: string): TrackedParticipant | undefined {
    return this.#byKey.get(participantKey(room, identity));
  }

  /**
   * Adds or replaces an entry (a new token for the same identity keeps a connected state).
   *
   * @returns the entries forgotten to stay within the bound.
   */
  put(p: TrackedParticipant): TrackedParticipant[] {
    const key = participantKey(p.room, p.identity);
    const old = this.#byKey.get(key);
    if (old) this.#unlink(key, old);
    const entry = old?.state === "connected" ? { ...p, state: "connected" as const } : p;
    this.#byKey.set(key, entry);
    let keys = this.#byRoom.get(entry.roomId);
    if (!keys) this.#byRoom.set(entry.roomId, keys = new Set());
    keys.add(key);
    return this.#trim();
  }

  /** Changes the state of an entry; returns the entry, or undefined when it is not tracked. */
  setState(room: string, identity: string, state: TrackedState): TrackedParticipant | undefined {
    const p = this.#byKey.get(participantKey(room, identity));
    if (p) p.state = state;
    return p;
  }

  delete(room: string, identity: string): TrackedParticipant | undefined {
    const key = participantKey(room, identity);
    const p = this.#byKey.get(key);
    if (p) this.#unlink(key, p);
    return p;
  }

  /** The Matrix rooms with at least one entry. */
  roomIds(): string[] {
    return [...this.#byRoom.keys()];
  }

  /** The entries of a Matrix room. */
  inRoom(roomId: string): TrackedParticipant[] {
    const keys = this.#byRoom.get(roomId);
    if (!keys) return [];
    const out: TrackedParticipant[] = [];
    for (const key of keys) {
      const p = this.#byKey.get(key);
      if (p) out.push(p);
    }
    return out;
  }

  /** Waiting entries whose token has expired at `nowMs` (to forget them). */
  expired(nowMs: number): TrackedParticipant[] {
    const out: TrackedParticipant[] = [];
    for (const p of this.#byKey.values()) {
      if (p.state === "waiting" && p.expiresAt <= nowMs) out.push(p);
    }
    return out;
  }

  all(): IterableIterator<TrackedParticipant> {
    return this.#byKey.values();
  }

  #unlink(key: string, p: TrackedParticipant): void {
    this.#byKey.delete(key);
    const keys = this.#byRoom.get(p.roomId);
    keys?.delete(key);
    if (keys?.size === 0) this.#byRoom.delete(p.roomId);
  }

  #trim(): TrackedParticipant[] {
    const dropped: TrackedParticipant[] = [];
    while (this.#byKey.size > this.#max) {
      let victim: [string, TrackedParticipant] | undefined;
      for (const e of this.#byKey) {
        if (e[1].state === "waiting") {
          victim = e;
          break;
        }
      }
      victim ??= this.#byKey.entries().next().value;
      if (!victim) break;
      this.#unlink(victim[0], victim[1]);
      dropped.push(victim[1]);
    }
    return dropped;
  }
}
