/**
 * `POST /_matrix/client/{v1,unstable/io.element.msc4195}/rtc/livekit/delegate_delayed_leave`
 * (app-service.md §5.3; MSC4195 "Optional delegated delayed leave events"): the homeserver's user
 * hands over a delayed leave event it scheduled. The event is looked up as that user (so a
 * `delay_id` of another user or room is refused), then registered as a delegation job that acts
 * as the user with the as_token for its restarts and the final send.
 *
 * @module
 */
import { Secret } from "../ids.ts";
import { memberIdentity, roomAlias } from "../livekit/names.ts";
import { MAX_REQUEST_BODY } from "../http/body.ts";
import type { RequestContext } from "../http/context.ts";
import { ApiError, Errors } from "../http/errors.ts";
import { jsonResponse } from "../http/token.ts";
import { MAX_DELAY_TIMEOUT_MS } from "../store/codec.ts";
import { delayHash } from "../delegation/homeserver.ts";
import type { AppServiceDeps } from "./deps.ts";
import type { DelayedEventInfo } from "./homeserver.ts";
import { AsErrors, readFields, requireFields } from "./inbound.ts";
import { requestUser } from "./get_token.ts";

const FIELDS = ["url", "room_id", "slot_id", "member_id", "delay_id"] as const;

/** Handles the delegation endpoint. */
export async function handleClientDelegate(
  deps: AppServiceDeps,
  req: Request,
  ctx: RequestContext,
): Promise<Response> {
  const body = requireFields(await readFields(req, FIELDS, MAX_REQUEST_BODY), FIELDS);
  const user = requestUser(deps, req, ctx);
  if (body.url !== deps.config.livekitUrl) throw AsErrors.wrongUrl("url is not LIVEKIT_URL");
  const delayId = body.delay_id;
  ctx.fields.delay = delayHash(delayId);
  // A dot segment would name another path on the homeserver: it cannot be a delay ID.
  if (delayId === "." || delayId === "..") throw AsErrors.unknownDelayId("dot segment");

  let event: DelayedEventInfo | undefined;
  try {
    event = await deps.homeserver.delayedEvent(delayId, user, ctx.signal);
  } catch (err) {
    throw AsErrors.unavailable(err);
  }
  if (!event) throw AsErrors.unknownDelayId("the homeserver does not know it for this user");
  if (event.roomId !== body.room_id) {
    throw AsErrors.unknownDelayId("the delayed event belongs to another room");
  }
  const T = event.delayMs;
  if (T === undefined) {
    throw AsErrors.unavailable(new Error("the delayed event has no positive delay_ms"));
  }
  if (T > MAX_DELAY_TIMEOUT_MS) {
    throw Errors.badJson(`invalid delay timeout for delayed event job: ${T}ms`);
  }

  const room = roomAlias(body.room_id, body.slot_id);
  const identity = memberIdentity(user, body.member_id);
  ctx.fields.room = room;
  ctx.fields.identity = identity;
  if (deps.shuttingDown()) throw Errors.shuttingDown();
  try {
    await deps.delegation.register({
      serverName: deps.appService.serverName,
      delayId: new Secret("delay_id", delayId),
      delayTimeoutMs: T,
      room,
      identity,
      userId: user,
      appServiceUser: user,
    });
  } catch (err) {
    throw err instanceof ApiError ? err : Errors.internal(err);
  }
  ctx.fields.delegated = true;
  return jsonResponse({});
}
