/**
 * The harness's view of the real SFU: Twirp RoomService calls in JSON with admin tokens it
 * mints itself (tokens-and-rooms.md §6), to see rooms and participants independently of the
 * service under test.
 *
 * @module
 */
import { LIVEKIT_HTTP_URL, LIVEKIT_KEY, LIVEKIT_SECRET } from "./env.ts";
import { adminToken } from "./jwt.ts";

/** Participant fields the suite looks at. */
export interface ParticipantInfo {
  identity: string;
  state?: string;
}

async function twirp<T>(
  method: string,
  req: { body: Record<string, unknown>; video: Record<string, unknown> },
): Promise<T> {
  const { body, video } = req;
  const res = await fetch(`${LIVEKIT_HTTP_URL}/twirp/livekit.RoomService/${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${adminToken(video, { key: LIVEKIT_KEY, secret: LIVEKIT_SECRET })}`,
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`Twirp ${method} failed: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Names of the rooms that exist on the SFU. */
export async function listRooms(): Promise<string[]> {
  const res = await twirp<{ rooms?: { name: string }[] }>("ListRooms", {
    body: {},
    video: { roomList: true },
  });
  return (res.rooms ?? []).map((r) => r.name);
}

/** Participants of `room` (empty when the room does not exist). */
export async function listParticipants(room: string): Promise<ParticipantInfo[]> {
  try {
    const res = await twirp<{ participants?: ParticipantInfo[] }>("ListParticipants", {
      body: { room },
      video: { roomAdmin: true, room },
    });
    return res.participants ?? [];
  } catch (err) {
    if (String(err).includes("not_found")) return [];
    throw err;
  }
}

/** Sorted identities of the participants of `room`. */
export async function participantIdentities(room: string): Promise<string[]> {
  return (await listParticipants(room)).map((p) => p.identity).sort();
}

/** Creates `room` directly (stack checks only; scenarios let the service create rooms). */
export async function createRoom(room: string): Promise<void> {
  await twirp("CreateRoom", {
    body: { name: room, emptyTimeout: 60 },
    video: { roomCreate: true },
  });
}

/** Deletes `room` (cleanup). */
export async function deleteRoom(room: string): Promise<void> {
  await twirp("DeleteRoom", { body: { room }, video: { roomCreate: true } });
}
