/**
 * LiveKit room names and participant identities (tokens-and-rooms.md §1–§2).
 *
 * `H(list)` is unpadded standard base64 of SHA-256 over `JSON.stringify(list)`: exactly what
 * matrix-js-sdk hashes, so clients that compute identities themselves agree with the SFU (D4).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { LiveKitIdentity, LiveKitRoomAlias, UserId } from "../ids.ts";

/** The slot legacy `/sfu/get` requests are placed in (tokens-and-rooms.md §2). */
export const LEGACY_SLOT = "m.call#ROOM";

/** `H(list)`: unpadded standard base64 of SHA-256 of the canonical JSON of a string list. */
export function hashList(list: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(list), "utf8").digest("base64").replace(
    /=+$/,
    "",
  );
}

/** Room name `H([room_id, slot_id])`. */
export function roomAlias(roomId: string, slotId: string): LiveKitRoomAlias {
  return hashList([roomId, slotId]) as LiveKitRoomAlias;
}

/** MSC4195 identity `H([sub, claimed_device_id, member.id])`. */
export function hashedIdentity(
  user: UserId,
  deviceId: string,
  memberId: string,
): LiveKitIdentity {
  return hashList([user, deviceId, memberId]) as LiveKitIdentity;
}

/** Legacy identity `<sub>:<device_id>`, not hashed (old clients match on it). */
export function legacyIdentity(user: UserId, deviceId: string): LiveKitIdentity {
  return `${user}:${deviceId}` as LiveKitIdentity;
}

/**
 * App-service identity `H([mxid, member_id])` (MSC4195 current text, app-service.md §5): the
 * user ID as the homeserver authenticated it and the MatrixRTC member ID.
 */
export function memberIdentity(user: UserId, memberId: string): LiveKitIdentity {
  return hashList([user, memberId]) as LiveKitIdentity;
}
