/**
 * The token endpoints of app-service mode (app-service.md §5.1, §5.2; MSC4195 "Acquiring LiveKit
 * access tokens"): the client-server `get_token` that Synapse forwards for its own users, local
 * or relayed to a remote server's service through `fed_proxy`, and the server-server twin that
 * remote servers reach through Synapse's federation listener. First failing step wins.
 *
 * @module
 */
import { type UserId, userId as toUserId } from "../ids.ts";
import { appServiceGrant, mintClientToken } from "../livekit/jwt.ts";
import { memberIdentity, roomAlias } from "../livekit/names.ts";
import { ApiError, Errors } from "../http/errors.ts";
import { MAX_REQUEST_BODY } from "../http/body.ts";
import type { RequestContext } from "../http/context.ts";
import { jsonResponse } from "../http/token.ts";
import type { AppServiceDeps } from "./deps.ts";
import type { JoinedQuery } from "./homeserver.ts";
import { AsErrors, parseUserId, readFields, requireFields } from "./inbound.ts";
import { relayToken } from "./relay.ts";
import { parseServerName } from "../matrix/server_name.ts";

const CS_FIELDS = ["server_name", "url", "room_id", "slot_id", "member_id"] as const;
const SS_FIELDS = ["user_id", "url", "room_id", "slot_id", "member_id"] as const;
const REQUIRED = ["url", "room_id", "slot_id", "member_id"] as const;

/**
 * The user Synapse authenticated (`X-Matrix-User-Identifier`, app-service.md §5.1 step 3).
 * A user of another server than `LIVEKIT_HS_SERVER_NAME` means the setting does not match
 * Synapse's `server_name`: refused, and logged as a configuration error.
 */
export function requestUser(deps: AppServiceDeps, req: Request, ctx: RequestContext): UserId {
  const header = req.headers.get("x-matrix-user-identifier");
  if (header === null || header === "") {
    throw AsErrors.unauthorized("X-Matrix-User-Identifier missing (not forwarded by Synapse?)");
  }
  const parsed = parseUserId(header);
  if (!parsed) throw AsErrors.invalidUser("X-Matrix-User-Identifier is not a user ID");
  ctx.fields.user_id = header;
  if (parsed.server !== deps.appService.serverName) {
    deps.log.error("Homeserver forwarded a user of another server", {
      request_id: ctx.id,
      user_id: header,
      fix: `LIVEKIT_HS_SERVER_NAME (${deps.appService.serverName}) must equal the ` +
        "server_name of the Synapse that forwards the requests",
    });
    throw AsErrors.forbidden("user of another server");
  }
  return toUserId(header);
}

/** `is_joined` with the refusals of app-service.md §5: false → 403, failure → 502. */
export async function requireJoined(
  deps: AppServiceDeps,
  ctx: RequestContext,
  roomId: string,
  who: JoinedQuery,
): Promise<void> {
  let joined: boolean;
  try {
    joined = await deps.homeserver.isJoined(roomId, who, ctx.signal);
  } catch (err) {
    ctx.fields.is_joined = "error";
    throw AsErrors.upstream(err);
  }
  if (!joined) {
    const subject = "mxid" in who ? `user ${who.mxid}` : `server ${who.serverName}`;
    ctx.fields.is_joined = "false";
    deps.log.info("Token refused: not joined to the room", {
      request_id: ctx.id,
      subject,
    });
    throw AsErrors.forbidden(`${subject} is not joined to the room`);
  }
}

/** Ensures the LiveKit room, mints and answers `{"jwt"}`; reports the token to the tracker. */
async function issue(
  deps: AppServiceDeps,
  ctx: RequestContext,
  options: { roomId: string; slotId: string; memberId: string; user: UserId; local: boolean },
): Promise<Response> {
  const room = roomAlias(options.roomId, options.slotId);
  const identity = memberIdentity(options.user, options.memberId);
  ctx.fields.room = room;
  ctx.fields.identity = identity;
  try {
    const { shared } = await deps.rooms.ensureRoom(room);
    ctx.fields.room_created = shared ? "reused" : "called";
  } catch (err) {
    throw err instanceof ApiError ? err : Errors.createRoomFailed(err);
  }
  let jwt: string;
  try {
    jwt = mintClientToken({
      key: deps.config.livekitKey,
      secret: deps.config.livekitSecret,
      identity,
      grant: appServiceGrant(room, {
        canPublish: options.local,
        canUpdateOwnMetadata: deps.appService.canUpdateOwnMetadata,
      }),
      nowSeconds: Math.floor(deps.clock.now() / 1000),
      validitySeconds: deps.config.jwtValiditySeconds,
    });
  } catch (err) {
    throw Errors.internal(err);
  }
  deps.metrics.appServiceTokens.inc({ kind: options.local ? "local" : "federation" });
  deps.tokens.tokenIssued({
    roomId: options.roomId,
    user: options.user,
    room,
    identity,
    local: options.local,
  });
  return jsonResponse({ jwt });
}

/** `POST /_matrix/client/{v1,unstable/io.element.msc4195}/rtc/livekit/get_token` (§5.1). */
export async function handleClientGetToken(
  deps: AppServiceDeps,
  req: Request,
  ctx: RequestContext,
): Promise<Response> {
  const body = requireFields(await readFields(req, CS_FIELDS, MAX_REQUEST_BODY), REQUIRED);
  const user = requestUser(deps, req, ctx);
  const own = deps.appService.serverName;
  const target = body.server_name ?? "";
  const local = target === "" || target === own;
  ctx.fields.target = local ? "local" : target;
  if (local && body.url !== deps.config.livekitUrl) {
    throw AsErrors.wrongUrl("url is not LIVEKIT_URL");
  }
  await requireJoined(deps, ctx, body.room_id, { mxid: user });
  if (local) {
    return await issue(deps, ctx, {
      roomId: body.room_id,
      slotId: body.slot_id,
      memberId: body.member_id,
      user,
      local: true,
    });
  }
  // A name that cannot be a server is not in the room either (and is never sent to Synapse).
  if (!parseServerName(target)) throw AsErrors.forbidden("server_name is not a server name");
  await requireJoined(deps, ctx, body.room_id, { serverName: target });
  const jwt = await relayToken(deps, ctx, {
    destination: target,
    body: {
      user_id: user,
      url: body.url,
      room_id: body.room_id,
      slot_id: body.slot_id,
      member_id: body.member_id,
    },
  });
  deps.metrics.appServiceTokens.inc({ kind: "relayed" });
  return jsonResponse({ jwt });
}

/** `POST /_matrix/federation/{v1,unstable/io.element.msc4195}/rtc/livekit/get_token` (§5.2). */
export async function handleFederationGetToken(
  deps: AppServiceDeps,
  req: Request,
  ctx: RequestContext,
): Promise<Response> {
  const body = requireFields(
    await readFields(req, SS_FIELDS, MAX_REQUEST_BODY),
    ["user_id", ...REQUIRED],
  );
  const origin = req.headers.get("x-matrix-origin");
  if (origin === null || origin === "") {
    throw AsErrors.unauthorized("X-Matrix-Origin missing (not forwarded by Synapse?)");
  }
  ctx.fields.origin = origin;
  ctx.fields.user_id = body.user_id;
  const parsed = parseUserId(body.user_id);
  if (!parsed) throw AsErrors.invalidUser("user_id is not a user ID");
  if (parsed.server !== origin) throw AsErrors.forbidden("user_id belongs to another server");
  // We must know the room (one of our users is in it) before asking about the remote user.
  await requireJoined(deps, ctx, body.room_id, { serverName: deps.appService.serverName });
  await requireJoined(deps, ctx, body.room_id, { mxid: body.user_id });
  if (body.url !== deps.config.livekitUrl) throw AsErrors.wrongUrl("url is not LIVEKIT_URL");
  return await issue(deps, ctx, {
    roomId: body.room_id,
    slotId: body.slot_id,
    memberId: body.member_id,
    user: toUserId(body.user_id),
    local: false,
  });
}
