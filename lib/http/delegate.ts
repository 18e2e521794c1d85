/**
 * `POST /delegate_delayed_leave` (http-api.md §8): registers a delegation for a participant that
 * is probably already connected. No JWT and no room creation.
 *
 * @module
 */
import { isExplicitlyListed } from "../policy/access.ts";
import { classify } from "../policy/access.ts";
import { type DelayId, Secret, serverName as toServerName } from "../ids.ts";
import { hashedIdentity, roomAlias } from "../livekit/names.ts";
import { Errors, Messages } from "./errors.ts";
import { nonEmpty } from "./decode.ts";
import type { AppDeps } from "./ports.ts";
import type { RequestContext } from "./context.ts";
import { checkDelay, registerJob, resolveCsApi, verifyUser } from "./steps.ts";
import { jsonResponse, readRequest } from "./token.ts";

/** Handles `/delegate_delayed_leave`. */
export async function handleDelegate(
  deps: AppDeps,
  options: { req: Request; ctx: RequestContext },
): Promise<Response> {
  const { req, ctx } = options;
  const body = await readRequest(req);
  if (!nonEmpty(body.room_id) || !nonEmpty(body.slot_id)) {
    throw Errors.badJson(Messages.missingRoomOrSlot);
  }
  const m = body.member;
  if (!nonEmpty(m?.id) || !nonEmpty(m?.claimed_user_id) || !nonEmpty(m?.claimed_device_id)) {
    throw Errors.badJson(Messages.missingMemberDelegate);
  }
  const openid = body.openid_token;
  if (!nonEmpty(openid?.access_token) || !nonEmpty(openid?.matrix_server_name)) {
    throw Errors.badJson(Messages.missingOpenIdDelegate);
  }
  const delay = checkDelay(body, { required: true })!;
  const server = toServerName(openid.matrix_server_name);
  ctx.fields.server_name = server;

  const user = await verifyUser(deps, {
    ctx,
    server,
    accessToken: new Secret("openid_token", openid.access_token),
    claimedUserId: m.claimed_user_id,
    expiresIn: openid.expires_in,
    exemptFromServerLimit: isExplicitlyListed(deps.config.fullAccess, server),
  });
  const access = classify(deps.config.fullAccess, server);
  ctx.fields.access = access;
  if (access !== "full") throw Errors.forbidden(Messages.delegationRestricted);

  const room = roomAlias(body.room_id, body.slot_id);
  const identity = hashedIdentity(user, m.claimed_device_id, m.id);
  ctx.fields.room = room;
  ctx.fields.identity = identity;
  await resolveCsApi(deps, { ctx, server });
  await registerJob(deps, {
    ctx,
    request: {
      serverName: server,
      delayId: delay.delayId as DelayId,
      delayTimeoutMs: 0,
      room,
      identity,
      userId: user,
    },
    delayTimeout: delay.delayTimeout,
  });
  return jsonResponse({});
}
