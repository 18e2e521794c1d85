/**
 * Room creation for full-access users with request coalescing (tokens-and-rooms.md §6.5):
 * concurrent requests for one room share one `CreateRoom` call, and a room created less than
 * 5 s ago is not created again. The map is bounded so a flood of distinct rooms cannot grow it.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { LiveKitRoomAlias } from "../ids.ts";
import type { RoomService } from "./room_service.ts";

/** How long a successful creation is reused (tokens-and-rooms.md §6.5). */
export const ROOM_REUSE_MS = 5_000;
const MAX_REMEMBERED = 10_000;

/** Ensures rooms exist on the SFU. */
export interface RoomCreator {
  /** Resolves when the room exists; `shared` tells whether no new SFU call was made. */
  ensureRoom(room: LiveKitRoomAlias): Promise<{ shared: boolean }>;
}

/** Wraps a {@linkcode RoomService} with coalescing and the short reuse window. */
export function createRoomCreator(
  service: Pick<RoomService, "createRoom">,
  clock: Clock,
): RoomCreator {
  const inFlight = new Map<LiveKitRoomAlias, Promise<void>>();
  const created = new Map<LiveKitRoomAlias, number>();

  function remember(room: LiveKitRoomAlias): void {
    created.delete(room);
    created.set(room, clock.monotonic());
    if (created.size > MAX_REMEMBERED) {
      const oldest = created.keys().next().value;
      if (oldest !== undefined) created.delete(oldest);
    }
  }

  return {
    async ensureRoom(room) {
      const at = created.get(room);
      if (at !== undefined && clock.monotonic() - at < ROOM_REUSE_MS) return { shared: true };
      const pending = inFlight.get(room);
      if (pending) {
        await pending;
        return { shared: true };
      }
      const call = service.createRoom(room).then(() => remember(room));
      inFlight.set(room, call);
      try {
        await call;
      } finally {
        inFlight.delete(room);
      }
      return { shared: false };
    },
  };
}
