/**
 * The SFU side of membership enforcement (app-service.md §8): `RemoveParticipant` and
 * `DeleteRoom` with bounded jittered retry ("not found" is success), one removal per participant
 * at a time, logged and counted.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { LiveKitRoomAlias } from "../ids.ts";
import type { RoomService } from "../livekit/room_service.ts";
import { describeError, type Logger } from "../log.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import { withRetry } from "./actions.ts";
import { participantKey, type TrackedParticipant } from "./tracked.ts";

/** What enforcement asks the SFU to do (`lib/livekit/room_service.ts`). */
export type SfuActions = Pick<RoomService, "removeParticipant" | "deleteRoom">;

/** What triggered a check (and so a removal). */
export type CheckSource = "join" | "push" | "sweep";

/** Options of {@linkcode SfuRemovals}. */
export interface SfuRemovalsOptions {
  sfu: SfuActions;
  clock: Clock;
  log: Logger;
  metrics?: Pick<
    ServiceMetrics,
    "membershipRemovals" | "membershipRoomsDeleted" | "membershipFailures"
  >;
  /** Aborted on shutdown: retries stop, nothing more is logged as a failure. */
  signal: AbortSignal;
}

/** Removals and room deletions on the SFU. */
export class SfuRemovals {
  readonly #o: SfuRemovalsOptions;
  /** SFU keys with a removal in flight. */
  readonly #removing = new Set<string>();

  constructor(options: SfuRemovalsOptions) {
    this.#o = options;
  }

  /**
   * Removes one participant. Resolves true once the SFU no longer has it (removed now, or not
   * found); false when the removal failed, was stopped, or another one of it is in flight.
   */
  async participant(p: TrackedParticipant, reason: CheckSource): Promise<boolean> {
    const key = participantKey(p.room, p.identity);
    if (this.#removing.has(key)) return false;
    this.#removing.add(key);
    const { sfu, signal } = this.#o;
    try {
      const present = await withRetry(() => sfu.removeParticipant(p.room, p.identity, signal), {
        clock: this.#o.clock,
        signal,
      });
      if (present) this.#o.metrics?.membershipRemovals.inc({ reason });
      this.#o.log.info("Removed a participant whose user is not joined to the room", {
        room_id: p.roomId,
        user_id: p.user,
        room: p.room,
        identity: p.identity,
        reason,
        present,
      });
      return true;
    } catch (err) {
      if (signal.aborted) return false;
      this.#o.metrics?.membershipFailures.inc({ op: "remove_participant" });
      this.#o.log.error("Could not remove a participant from the SFU", {
        room: p.room,
        identity: p.identity,
        reason,
        err: describeError(err),
      });
      return false;
    } finally {
      this.#removing.delete(key);
    }
  }

  /** Deletes a LiveKit room; true once it no longer exists. */
  async room(room: LiveKitRoomAlias, reason: "push" | "sweep"): Promise<boolean> {
    const { sfu, signal } = this.#o;
    try {
      const existed = await withRetry(() => sfu.deleteRoom(room, signal), {
        clock: this.#o.clock,
        signal,
      });
      if (existed) this.#o.metrics?.membershipRoomsDeleted.inc({ reason });
      return true;
    } catch (err) {
      if (signal.aborted) return false;
      this.#o.metrics?.membershipFailures.inc({ op: "delete_room" });
      this.#o.log.error("Could not delete a LiveKit room", { room, err: describeError(err) });
      return false;
    }
  }
}
