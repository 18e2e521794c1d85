/**
 * App-service scenarios (app-service.md): the service instances registered with homeservers A
 * and B (each reads the registration file Synapse reads), and rooms shared over federation.
 *
 * @module
 */
import {
  LIVEKIT_B_KEY,
  LIVEKIT_B_SECRET,
  LIVEKIT_B_WS_URL,
  LIVEKIT_WS_URL,
  SERVER_NAME,
  SERVER_NAME_B,
  SERVICE_B_BIND,
  stackPaths,
  SYNAPSE_B_URL,
  SYNAPSE_URL,
  uniqueSuffix,
} from "./env.ts";
import { waitFor } from "./poll.ts";
import { Service } from "./service.ts";
import { MatrixUser } from "./synapse.ts";

/** The client-server paths of MSC4195 as clients call them on their homeserver. */
export const RTC = {
  getToken: "/_matrix/client/v1/rtc/livekit/get_token",
  getTokenUnstable: "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/get_token",
  delegate: "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave",
} as const;

/** Starts the service of homeserver A (127.0.0.1:8080, SFU A) in app-service mode. */
export async function startServiceA(name: string, env: Record<string, string> = {}) {
  const paths = stackPaths();
  return await Service.start({
    name,
    env: {
      LIVEKIT_AS_REGISTRATION_FILE: `${paths.run}/appservice-a.yaml`,
      LIVEKIT_HS_SERVER_NAME: SERVER_NAME,
      LIVEKIT_CS_API_URL_OVERRIDES: `${SERVER_NAME}=${SYNAPSE_URL}`,
      ...env,
    },
  });
}

/** Starts the service of homeserver B (127.0.0.1:8081, SFU B) in app-service mode. */
export async function startServiceB(name: string) {
  const paths = stackPaths();
  return await Service.start({
    name,
    bind: SERVICE_B_BIND,
    fullAccess: SERVER_NAME_B,
    env: {
      LIVEKIT_URL: LIVEKIT_B_WS_URL,
      LIVEKIT_KEY: LIVEKIT_B_KEY,
      LIVEKIT_SECRET: LIVEKIT_B_SECRET,
      LIVEKIT_AS_REGISTRATION_FILE: `${paths.run}/appservice-b.yaml`,
      LIVEKIT_HS_SERVER_NAME: SERVER_NAME_B,
      LIVEKIT_CS_API_URL_OVERRIDES: `${SERVER_NAME_B}=${SYNAPSE_B_URL}`,
    },
  });
}

/** A new user of homeserver A (`a`) or B (`b`). */
export function newUser(prefix: string, hs: "a" | "b"): Promise<MatrixUser> {
  return MatrixUser.register(
    `${prefix}-${uniqueSuffix()}`,
    hs === "a" ? SYNAPSE_URL : SYNAPSE_B_URL,
  );
}

/**
 * A call room created by `owner`, with `others` invited and joined (over federation for users
 * of the other homeserver); resolves once the owner's homeserver sees every member joined.
 */
export async function sharedRoom(owner: MatrixUser, others: MatrixUser[]): Promise<string> {
  const roomId = await owner.createCallRoom();
  for (const other of others) {
    await owner.invite(roomId, other.userId);
    // The invite reaches the other homeserver asynchronously over federation.
    await waitFor(async () => {
      try {
        await other.join(roomId);
        return true;
      } catch {
        return undefined;
      }
    }, { what: `${other.userId} to join ${roomId}`, timeoutMs: 30_000, intervalMs: 250 });
  }
  const everyone = [owner, ...others].map((u) => u.userId).sort();
  await waitFor(async () => {
    const seen = (await owner.joinedMembers(roomId)).sort();
    return JSON.stringify(seen) === JSON.stringify(everyone) ? true : undefined;
  }, { what: `all members joined in ${roomId}`, timeoutMs: 30_000, intervalMs: 250 });
  return roomId;
}

/** A fresh MatrixRTC member ID (random per join, as in sticky-event mode). */
export function newMemberId(): string {
  return `member-${uniqueSuffix()}${uniqueSuffix()}`;
}

/** The token body a MatrixRTC client sends to its homeserver (MSC4195), for SFU A by default. */
export function tokenRequest(
  roomId: string,
  memberId: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    url: LIVEKIT_WS_URL,
    room_id: roomId,
    slot_id: "m.call#ROOM",
    member_id: memberId,
    ...extra,
  };
}
