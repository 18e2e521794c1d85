/**
 * `POST /delegate_delayed_leave` (http-api.md §8): registers a delegation for a participant that
 * is probably already connected. No JWT and no room creation.
 *
 * @module
 */
import { classify, isExplicitlyListed } from "../policy/access.ts";
import { Secret, serverName as toServerName } from "../ids.ts";
import { hashedIdentity, roomAlias } from "../livekit/names.ts";
import { Errors, Messages } from "./errors.ts";
import type { AppDeps } from "./ports.ts";
import type { RequestContext } from "./context.ts";
import { checkDelay, registerJob, requireMsc4195, resolveCsApi, verifyUser } from "./steps.ts";
import { jsonResponse, readRequest } from "./token.ts";

/** Handles `/delegate_delayed_leave`. */
export async function handleDelegate(
  deps: AppDeps,
  options: { req: Request; ctx: RequestContext },
): Promise<Response> {
  const { req, ctx } = options;
  const body = await readRequest(req);
  const f = requireMsc4195(body, {
    member: Messages.missingMemberDelegate,
    openid: Messages.missingOpenIdDelegate,
  });
  const delay = checkDelay(body, { required: true })!;
  const server = toServerName(f.serverName);
  ctx.fields.server_name = server;

  const user = await verifyUser(deps, {
    ctx,
    server,
    accessToken: new Secret("openid_token", f.accessToken),
    claimedUserId: f.claimedUserId,
    expiresIn: f.expiresIn,
    exemptFromServerLimit: isExplicitlyListed(deps.config.fullAccess, server),
  });
  const access = classify(deps.config.fullAccess, server);
  ctx.fields.access = access;
  if (access !== "full") throw Errors.forbidden(Messages.delegationRestricted);

  const room = roomAlias(f.roomId, f.slotId);
  const identity = hashedIdentity(user, f.claimedDeviceId, f.memberId);
  ctx.fields.room = room;
  ctx.fields.identity = identity;
  await resolveCsApi(deps, { ctx, server });
  await registerJob(deps, {
    ctx,
    delay,
    job: { serverName: server, room, identity, userId: user },
  });
  return jsonResponse({});
}
