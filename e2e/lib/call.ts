/**
 * Scenario building blocks: a fresh Synapse user in a fresh call room with a published
 * membership and a scheduled delayed leave, as Element Call sets it up before asking the
 * service for a token (clients-and-deployments.md §2, delegation.md §1).
 *
 * @module
 */
import assert from "node:assert/strict";
import { uniqueSuffix } from "./env.ts";
import { hashedIdentity, roomAlias } from "./hash.ts";
import { decodeJwt } from "./jwt.ts";
import { memberIdOf } from "./requests.ts";
import { MatrixUser } from "./synapse.ts";

/** A user's MatrixRTC call in one Matrix room. */
export interface Call {
  user: MatrixUser;
  roomId: string;
  memberId: string;
  /** LiveKit room name computed by the harness. */
  room: string;
  /** LiveKit identity computed by the harness for `/get_token`. */
  identity: string;
}

/** Registers `<prefix>-<random>` and creates a call room for it. */
export async function newCall(prefix: string): Promise<Call> {
  const user = await MatrixUser.register(`${prefix}-${uniqueSuffix()}`);
  const roomId = await user.createCallRoom();
  const memberId = memberIdOf(user);
  return {
    user,
    roomId,
    memberId,
    room: roomAlias(roomId),
    identity: hashedIdentity({ userId: user.userId, deviceId: user.deviceId, memberId }),
  };
}

/** Publishes the membership and schedules its delayed leave; returns the `delay_id`. */
export async function joinMatrixCall(call: Call, delayMs: number): Promise<string> {
  await call.user.publishMembership(call.roomId, call.memberId);
  return await call.user.scheduleDelayedLeave(call.roomId, delayMs);
}

/** Payload of a token answer after checking the fields every client relies on. */
export function checkTokenAnswer(
  json: Record<string, unknown>,
  expected: { url: string; room: string; identity: string },
): Record<string, unknown> {
  assert.equal(json.url, expected.url);
  assert.equal(typeof json.jwt, "string");
  const { header, payload } = decodeJwt(json.jwt as string);
  assert.deepEqual(header, { alg: "HS256", typ: "JWT" });
  assert.equal(payload.sub, expected.identity);
  assert.equal(payload.identity, expected.identity);
  const video = payload.video as Record<string, unknown>;
  assert.equal(video.room, expected.room);
  assert.equal(video.roomJoin, true);
  assert.equal("aud" in payload, false);
  return payload;
}

/** `running_since` of the pending delayed event, or undefined once it fired. */
export async function runningSince(call: Call, delayId: string): Promise<number | undefined> {
  return (await call.user.pendingDelayedEvent(delayId))?.running_since;
}
