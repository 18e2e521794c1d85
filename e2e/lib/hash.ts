/**
 * Independent implementation of the room-name and identity derivation of tokens-and-rooms.md
 * §1–§2, so the suite checks the service's JWTs against values it computed itself.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** `H(list)`: unpadded standard base64 of SHA-256 over `JSON.stringify(list)`. */
export function h(parts: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(parts), "utf8").digest("base64")
    .replace(/=+$/, "");
}

/** LiveKit room name of a Matrix room and MatrixRTC slot. */
export function roomAlias(roomId: string, slotId = "m.call#ROOM"): string {
  return h([roomId, slotId]);
}

/** Participant identity of an MSC4195 request (`/get_token`). */
export function hashedIdentity(
  opts: { userId: string; deviceId: string; memberId: string },
): string {
  return h([opts.userId, opts.deviceId, opts.memberId]);
}

/** Participant identity of a legacy `/sfu/get` request. */
export function legacyIdentity(userId: string, deviceId: string): string {
  return `${userId}:${deviceId}`;
}
