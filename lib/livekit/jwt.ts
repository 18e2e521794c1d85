/**
 * LiveKit access tokens (tokens-and-rooms.md §4, §6.2).
 *
 * Minted here rather than with `livekit-server-sdk`'s `AccessToken`: the reference's tokens carry
 * `typ`, `iat` and `identity`, which the SDK does not emit, and a direct HMAC is about 14× faster
 * (deno-stack.md §2). Tests verify our tokens with the SDK's verifier.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { Buffer } from "node:buffer";
import type { LiveKitIdentity, LiveKitRoomAlias, Secret } from "../ids.ts";

const HEADER = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString("base64url");

/** The `video` grant of a client token, keys in the reference's order. */
export type ClientGrant =
  | {
    roomJoin: true;
    room: string;
    canPublish: true;
    canSubscribe: true;
    canUpdateOwnMetadata: true;
  }
  | {
    roomJoin: true;
    room: string;
    canPublish: false;
    canSubscribe: true;
    canPublishData: false;
    canUpdateOwnMetadata: true;
  };

/**
 * The `video` grant of a token issued in app-service mode (MSC4195 "Access token properties"):
 * no room creation (it would also allow deleting any room), publishing only for local users,
 * never hidden.
 */
export interface AppServiceGrant {
  roomJoin: true;
  room: string;
  roomCreate: false;
  canPublish: boolean;
  canSubscribe: true;
  canUpdateOwnMetadata: boolean;
  hidden: false;
}

/** Builds the app-service grant (app-service.md §5). */
export function appServiceGrant(
  room: LiveKitRoomAlias,
  options: { canPublish: boolean; canUpdateOwnMetadata: boolean },
): AppServiceGrant {
  return {
    roomJoin: true,
    room,
    roomCreate: false,
    canPublish: options.canPublish,
    canSubscribe: true,
    canUpdateOwnMetadata: options.canUpdateOwnMetadata,
    hidden: false,
  };
}

/** Grants of the RoomService admin tokens. */
export type AdminGrant = { roomCreate: true } | { roomAdmin: true; room: string };

function sign(payload: string, secret: Secret): string {
  const input = `${HEADER}.${Buffer.from(payload).toString("base64url")}`;
  const sig = createHmac("sha256", secret.reveal()).update(input).digest("base64url");
  return `${input}.${sig}`;
}

/** Builds the grant for a full-access or restricted user (D6). */
export function clientGrant(
  room: LiveKitRoomAlias,
  options: { subscribeOnly: boolean },
): ClientGrant {
  if (options.subscribeOnly) {
    return {
      roomJoin: true,
      room,
      canPublish: false,
      canSubscribe: true,
      canPublishData: false,
      canUpdateOwnMetadata: true,
    };
  }
  return { roomJoin: true, room, canPublish: true, canSubscribe: true, canUpdateOwnMetadata: true };
}

/**
 * Mints a client JWT: claims `iss sub iat nbf exp identity video`, nothing else (no `aud`).
 *
 * @throws {RangeError} when key or secret is empty (configuration validation prevents this).
 */
export function mintClientToken(options: {
  key: string;
  secret: Secret;
  identity: LiveKitIdentity;
  grant: ClientGrant | AppServiceGrant;
  nowSeconds: number;
  validitySeconds: number;
}): string {
  const { key, secret, identity, grant, nowSeconds } = options;
  if (key === "" || secret.length === 0) {
    throw new RangeError("Cannot mint a token without key and secret");
  }
  const claims = {
    iss: key,
    sub: identity,
    iat: nowSeconds,
    nbf: nowSeconds,
    exp: nowSeconds + options.validitySeconds,
    identity,
    video: grant,
  };
  return sign(JSON.stringify(claims), secret);
}

/** Admin token for one RoomService call: 10 minutes, no `sub` (tokens-and-rooms.md §6.2). */
export function mintAdminToken(options: {
  key: string;
  secret: Secret;
  grant: AdminGrant;
  nowSeconds: number;
}): string {
  const { key, secret, grant, nowSeconds } = options;
  const claims = {
    iss: key,
    iat: nowSeconds,
    nbf: nowSeconds,
    exp: nowSeconds + 600,
    video: grant,
  };
  return sign(JSON.stringify(claims), secret);
}
