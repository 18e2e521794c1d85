/**
 * Request bodies exactly as Element Call sends them (clients-and-deployments.md §2.2,
 * http-api.md §5), built from real Synapse users and OpenID tokens.
 *
 * @module
 */
import type { MatrixUser, OpenIdToken } from "./synapse.ts";

/** Delegation fields of a token request. */
export interface DelayFields {
  delayId: string;
  delayTimeoutMs: number;
}

/** MSC4195 body for `/get_token` (and `/delegate_delayed_leave`). */
export function getTokenBody(
  user: MatrixUser,
  opts: { roomId: string; openId: OpenIdToken; memberId: string; delay?: DelayFields },
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    room_id: opts.roomId,
    slot_id: "m.call#ROOM",
    openid_token: opts.openId,
    member: { id: opts.memberId, claimed_user_id: user.userId, claimed_device_id: user.deviceId },
  };
  if (opts.delay !== undefined) {
    body.delay_id = opts.delay.delayId;
    body.delay_timeout = opts.delay.delayTimeoutMs;
    // Sent by Element Call, ignored by the service (never contacted).
    body.delay_cs_api_url = "https://localhost:8448";
  }
  return body;
}

/** Legacy body for `/sfu/get`. */
export function legacyBody(
  user: MatrixUser,
  opts: { roomId: string; openId: OpenIdToken; delay?: DelayFields },
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    room: opts.roomId,
    openid_token: opts.openId,
    device_id: user.deviceId,
  };
  if (opts.delay !== undefined) {
    body.delay_id = opts.delay.delayId;
    body.delay_timeout = opts.delay.delayTimeoutMs;
  }
  return body;
}

/** Element Call's membership ID in the state-event modes: `<user_id>:<device_id>`. */
export function memberIdOf(user: MatrixUser): string {
  return `${user.userId}:${user.deviceId}`;
}
