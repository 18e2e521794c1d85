/**
 * `POST /sfu/get` and `POST /get_token` (http-api.md §6–§7): validation in the spec's order, OpenID
 * verification, policy, JWT minting, CS API resolution, room creation and job registration.
 *
 * @module
 */
import { classify, isExplicitlyListed } from "../policy/access.ts";
import { Secret, serverName as toServerName, type UserId } from "../ids.ts";
import { hashedIdentity, LEGACY_SLOT, legacyIdentity, roomAlias } from "../livekit/names.ts";
import { clientGrant, mintClientToken } from "../livekit/jwt.ts";
import { ApiError, Errors, Messages } from "./errors.ts";
import { decodeRequestBody, isLegacyShape, nonEmpty, type RequestBody } from "./decode.ts";
import { MAX_REQUEST_BODY, readBodyLimited } from "./body.ts";
import type { AppDeps } from "./ports.ts";
import type { RequestContext } from "./context.ts";
import {
  checkDelay,
  type Msc4195Fields,
  registerJob,
  requireMsc4195,
  resolveCsApi,
  verifyUser,
} from "./steps.ts";

/** Reads and decodes a POST body (steps 3–4 of every pipeline). */
export async function readRequest(req: Request): Promise<RequestBody> {
  const bytes = await readBodyLimited(req, { maxBytes: MAX_REQUEST_BODY });
  try {
    return decodeRequestBody(bytes);
  } catch (err) {
    throw Errors.notJson(err);
  }
}

function jsonResponse(body: unknown): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status: 200,
    headers: { "Content-Type": "application/json" },
  });
}

/** Handles both token endpoints; `/sfu/get` picks the pipeline by body shape (§6.1). */
export async function handleToken(
  deps: AppDeps,
  options: { req: Request; ctx: RequestContext; endpoint: "sfu_get" | "get_token" },
): Promise<Response> {
  const { req, ctx, endpoint } = options;
  const body = await readRequest(req);
  const legacy = endpoint === "sfu_get" && isLegacyShape(body);
  ctx.fields.shape = legacy ? "legacy" : "msc4195";

  // Shape-specific required fields (§6.2 steps 5–6, §7 steps 5–7).
  let accessToken: string;
  let serverText: string;
  let expiresIn: bigint | undefined;
  let msc: Msc4195Fields | undefined;
  if (legacy) {
    const openid = body.openid_token;
    if (!nonEmpty(body.room)) throw Errors.badJson(Messages.missingRoom);
    if (!nonEmpty(openid?.access_token) || !nonEmpty(openid?.matrix_server_name)) {
      throw Errors.badJson(Messages.missingOpenIdLegacy);
    }
    accessToken = openid.access_token;
    serverText = openid.matrix_server_name;
    expiresIn = openid.expires_in;
  } else {
    msc = requireMsc4195(body, {
      member: Messages.missingMemberToken,
      openid: Messages.missingOpenIdToken,
    });
    ({ accessToken, serverName: serverText, expiresIn } = msc);
  }
  const server = toServerName(serverText);
  ctx.fields.server_name = server;

  // Delay pairing and delay_id checks (§5.4).
  const delay = checkDelay(body, { required: false });

  // Per-server limit, OpenID verification, claimed user, per-user limit.
  const user: UserId = await verifyUser(deps, {
    ctx,
    server,
    accessToken: new Secret("openid_token", accessToken),
    claimedUserId: msc?.claimedUserId,
    expiresIn,
    exemptFromServerLimit: isExplicitlyListed(deps.config.fullAccess, server),
  });

  const access = classify(deps.config.fullAccess, server);
  ctx.fields.access = access;
  if (delay && access !== "full") throw Errors.badJson(Messages.delegationRestricted);

  const room = msc ? roomAlias(msc.roomId, msc.slotId) : roomAlias(body.room!, LEGACY_SLOT);
  const identity = msc
    ? hashedIdentity(user, msc.claimedDeviceId, msc.memberId)
    : legacyIdentity(user, body.device_id ?? "");
  ctx.fields.room = room;
  ctx.fields.identity = identity;

  let jwt: string;
  try {
    jwt = mintClientToken({
      key: deps.config.livekitKey,
      secret: deps.config.livekitSecret,
      identity,
      grant: clientGrant(room, {
        subscribeOnly: access === "restricted" && deps.config.restrictedSubscribeOnly,
      }),
      nowSeconds: Math.floor(deps.clock.now() / 1000),
      validitySeconds: deps.config.jwtValiditySeconds,
    });
  } catch (err) {
    throw Errors.internal(err);
  }

  if (access === "full") {
    if (delay) await resolveCsApi(deps, { ctx, server });
    try {
      const { shared } = await deps.rooms.ensureRoom(room);
      ctx.fields.room_created = shared ? "reused" : "called";
    } catch (err) {
      throw err instanceof ApiError ? err : Errors.createRoomFailed(err);
    }
    if (delay) {
      await registerJob(deps, {
        ctx,
        delay,
        job: { serverName: server, room, identity, userId: user },
      });
    }
  }
  if (deps.tokens && server === deps.config.appService?.serverName) {
    deps.tokens.tokenIssued({
      roomId: msc ? msc.roomId : body.room!,
      user,
      room,
      identity,
      local: true,
    });
  }
  return jsonResponse({ url: deps.config.livekitUrl, jwt });
}

export { jsonResponse };
