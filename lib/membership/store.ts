/**
 * Tracked participants in Redis (app-service.md §8): the hash `lk-jwt:participants`, so that a
 * restarted service (and every replica on the same Redis) keeps enforcing membership for tokens
 * it issued before.
 *
 * Field: `["<LiveKit room>","<identity>"]` (the jobs hash's field encoding). Value: compact JSON
 * `{"roomId","user","state","expiresAt"}` (`expiresAt` in Unix ms). Entries that do not decode
 * are skipped on load (and removed by the next write of that field).
 *
 * Writes never block callers: they are queued per field (the last value wins) and failures are
 * logged and counted, not retried — the next change of the entry writes it again, and an entry
 * lost from Redis only means a restarted service forgets one participant.
 *
 * @module
 */
import { describeError, type Logger } from "../log.ts";
import { userId } from "../ids.ts";
import type { LiveKitIdentity, LiveKitRoomAlias } from "../ids.ts";
import { encodeField } from "../store/codec.ts";
import { hashReply } from "../store/redis.ts";
import type { TrackedParticipant } from "./tracked.ts";

/** The Redis hash of tracked participants. */
export const PARTICIPANTS_HASH = "lk-jwt:participants";

/** What the store needs from a Redis connection. */
export interface RedisCommands {
  command(args: string[]): Promise<unknown>;
}

/** The hash value of an entry. */
export function encodeParticipant(p: TrackedParticipant): string {
  return JSON.stringify({
    roomId: p.roomId,
    user: p.user,
    state: p.state,
    expiresAt: p.expiresAt,
  });
}

/** An entry from its field and value, or undefined when either is malformed. */
export function decodeParticipant(field: string, value: string): TrackedParticipant | undefined {
  try {
    const key: unknown = JSON.parse(field);
    const doc: unknown = JSON.parse(value);
    if (!Array.isArray(key) || key.length !== 2) return undefined;
    const [room, identity] = key;
    if (typeof room !== "string" || typeof identity !== "string") return undefined;
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
    const { roomId, user, state, expiresAt } = doc as Record<string, unknown>;
    if (typeof roomId !== "string" || typeof user !== "string") return undefined;
    if (state !== "waiting" && state !== "connected") return undefined;
    if (typeof expiresAt !== "number" || !Number.isFinite(expiresAt)) return undefined;
    return {
      roomId,
      user: userId(user),
      room: room as LiveKitRoomAlias,
      identity: identity as LiveKitIdentity,
      state,
      expiresAt,
    };
  } catch {
    return undefined;
  }
}

/** Queued, per-field writes of tracked participants. */
export class ParticipantStore {
  readonly #redis: RedisCommands;
  readonly #log: Logger;
  readonly #onError: (op: string) => void;
  /** Field → value to write (`null` = delete) while a write of that field runs. */
  readonly #queued = new Map<string, string | null>();
  readonly #running = new Map<string, Promise<void>>();

  constructor(redis: RedisCommands, options: { log: Logger; onError?: (op: string) => void }) {
    this.#redis = redis;
    this.#log = options.log;
    this.#onError = options.onError ?? (() => {});
  }

  save(p: TrackedParticipant): void {
    this.#enqueue(encodeField(p.room, p.identity), encodeParticipant(p));
  }

  forget(p: Pick<TrackedParticipant, "room" | "identity">): void {
    this.#enqueue(encodeField(p.room, p.identity), null);
  }

  /** Every decodable entry of the hash. */
  async loadAll(): Promise<TrackedParticipant[]> {
    const entries = hashReply(await this.#redis.command(["HGETALL", PARTICIPANTS_HASH]));
    const out: TrackedParticipant[] = [];
    for (const [field, value] of entries) {
      const p = decodeParticipant(field, value);
      if (p) out.push(p);
    }
    return out;
  }

  /** Resolves when every queued write is done (or failed). */
  async flush(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running.values());
  }

  #enqueue(field: string, value: string | null): void {
    this.#queued.set(field, value);
    if (this.#running.has(field)) return;
    const run = (async () => {
      while (this.#queued.has(field)) {
        const next = this.#queued.get(field)!;
        this.#queued.delete(field);
        const op = next === null ? "hdel" : "hset";
        try {
          await this.#redis.command(
            next === null
              ? ["HDEL", PARTICIPANTS_HASH, field]
              : ["HSET", PARTICIPANTS_HASH, field, next],
          );
        } catch (err) {
          this.#onError(op);
          this.#log.warn("Could not write a tracked participant to Redis", {
            op,
            err: describeError(err),
          });
        }
      }
    })().finally(() => this.#running.delete(field));
    this.#running.set(field, run);
  }
}
