/**
 * Pipeline steps shared by the three POST endpoints: delay pairing (http-api.md §5.4), rate
 * limits around OpenID verification (§10), CS API resolution and job registration (§9.1).
 *
 * @module
 */
import { Secret } from "../ids.ts";
import type { OpenIdAccessToken, ServerName, UserId } from "../ids.ts";
import { describeError } from "../log.ts";
import { explainPermissionError } from "../permission_errors.ts";
import type { OpenIdOutcome } from "../metrics/metrics.ts";
import { ApiError, Errors, Messages } from "./errors.ts";
import { nonEmpty, type RequestBody } from "./decode.ts";
import type { AppDeps, DelegationRequest } from "./ports.ts";
import type { RequestContext } from "./context.ts";

/** Largest `delay_timeout` whose nanoseconds fit a signed 64-bit integer (delegation.md §2). */
export const MAX_DELAY_TIMEOUT_MS = 9_223_372_036_854n;

/** The fields of an MSC4195 body after the required-field checks. */
export interface Msc4195Fields {
  roomId: string;
  slotId: string;
  memberId: string;
  claimedUserId: string;
  claimedDeviceId: string;
  accessToken: string;
  serverName: string;
  expiresIn: bigint | undefined;
}

/**
 * Steps 5–7 of http-api.md §7 and §8: room and slot, the member fields, the OpenID fields, each
 * with the message of its endpoint (`/get_token` says "a", `/delegate_delayed_leave` does not).
 */
export function requireMsc4195(
  body: RequestBody,
  messages: { member: string; openid: string },
): Msc4195Fields {
  if (!nonEmpty(body.room_id) || !nonEmpty(body.slot_id)) {
    throw Errors.badJson(Messages.missingRoomOrSlot);
  }
  const m = body.member;
  if (!nonEmpty(m?.id) || !nonEmpty(m?.claimed_user_id) || !nonEmpty(m?.claimed_device_id)) {
    throw Errors.badJson(messages.member);
  }
  const openid = body.openid_token;
  if (!nonEmpty(openid?.access_token) || !nonEmpty(openid?.matrix_server_name)) {
    throw Errors.badJson(messages.openid);
  }
  return {
    roomId: body.room_id,
    slotId: body.slot_id,
    memberId: m.id,
    claimedUserId: m.claimed_user_id,
    claimedDeviceId: m.claimed_device_id,
    accessToken: openid.access_token,
    serverName: openid.matrix_server_name,
    expiresIn: openid.expires_in,
  };
}

/** A requested delegation after the pairing rule. */
export interface DelayRequest {
  delayId: Secret<"delay_id">;
  delayTimeout: bigint;
}

/**
 * Applies the pairing rule and the `.`/`..` check; returns undefined when no delegation is
 * requested. With `required`, delegation must be requested (`/delegate_delayed_leave`).
 */
export function checkDelay(
  body: RequestBody,
  options: { required: boolean },
): DelayRequest | undefined {
  const id = body.delay_id;
  const timeout = body.delay_timeout ?? 0n;
  const requested = nonEmpty(id) || timeout > 0n;
  if (!requested && !options.required) return undefined;
  if (!nonEmpty(id) || timeout <= 0n) throw Errors.badJson(Messages.missingDelay);
  if (id === "." || id === "..") throw Errors.badJson(Messages.invalidDelayId);
  return { delayId: new Secret("delay_id", id), delayTimeout: timeout };
}

/**
 * Per-server limit, OpenID verification, claimed-user check and per-user limit, in that order
 * (http-api.md §7 steps 10–13).
 */
export async function verifyUser(
  deps: AppDeps,
  options: {
    ctx: RequestContext;
    server: ServerName;
    accessToken: OpenIdAccessToken;
    claimedUserId: string | undefined;
    exemptFromServerLimit: boolean;
    expiresIn?: bigint | undefined;
  },
): Promise<UserId> {
  const { ctx, server } = options;
  if (deps.config.fullAccessOnly && !options.exemptFromServerLimit) {
    // Only listed homeservers are served: no outbound request for any other (and under the
    // launcher's strict host list none would be permitted anyway).
    ctx.fields.openid = "not served";
    deps.metrics.openid.inc({ outcome: "blocked" });
    deps.log.warn("OpenID verification failed", {
      request_id: ctx.id,
      server_name: server,
      reason: "homeserver not served (LIVEKIT_FULL_ACCESS_ONLY=true)",
    });
    throw Errors.unauthorized("homeserver not served");
  }
  if (!options.exemptFromServerLimit) {
    const wait = deps.limits.server.take(server);
    if (wait > 0) {
      ctx.fields.limit = "server";
      deps.metrics.rateLimited.inc({ bucket: "server" });
      throw Errors.rateLimited(wait);
    }
  }
  const expires = options.expiresIn;
  let user: UserId;
  try {
    user = await deps.verifier.verify({
      serverName: server,
      accessToken: options.accessToken,
      signal: ctx.signal,
      expiresInSeconds: expires !== undefined && expires > 0n && expires < 2n ** 31n
        ? Number(expires)
        : undefined,
    });
  } catch (err) {
    ctx.fields.openid = "failed";
    deps.metrics.openid.inc({ outcome: openIdOutcome(err) });
    deps.log.warn("OpenID verification failed", {
      request_id: ctx.id,
      server_name: server,
      reason: explainPermissionError(err) ?? describeError(err),
    });
    throw Errors.unauthorized(err);
  }
  ctx.fields.user_id = user;
  if (options.claimedUserId !== undefined && options.claimedUserId !== user) {
    deps.log.warn("OpenID verification failed", {
      request_id: ctx.id,
      server_name: server,
      reason: "claimed user mismatch",
      claimed_user_id: options.claimedUserId,
      user_id: user,
    });
    deps.metrics.openid.inc({ outcome: "user_mismatch" });
    throw Errors.unauthorized("claimed user mismatch");
  }
  deps.metrics.openid.inc({ outcome: "ok" });
  const wait = deps.limits.user.take(user);
  if (wait > 0) {
    ctx.fields.limit = "user";
    deps.metrics.rateLimited.inc({ bucket: "user" });
    throw Errors.rateLimited(wait);
  }
  return user;
}

/** Maps a verification failure onto the metric outcomes of the `openid` counter. */
export function openIdOutcome(err: unknown): OpenIdOutcome {
  if (!(err instanceof Error) || !("stage" in err)) return "bad_response";
  const { stage, status } = err as Error & { stage: string; status?: number };
  switch (stage) {
    case "status":
      return status === 401 ? "unknown_token" : "bad_response";
    case "sub mismatch":
      return "user_mismatch";
    case "tls":
      return "tls";
    case "timeout":
      return "timeout";
    case "destination not allowed":
      return "blocked";
    case "dns":
    case "connect":
    case "well-known":
      return "unreachable";
    default:
      return "bad_response";
  }
}

/** Resolves the CS API for a delegation at request time (http-api.md §6.2 step 14). */
export async function resolveCsApi(
  deps: AppDeps,
  options: { ctx: RequestContext; server: ServerName },
): Promise<void> {
  let base: { baseUrl: string } | undefined;
  try {
    base = await deps.csApi.resolve(options.server, options.ctx.signal);
  } catch (err) {
    options.ctx.cause = err;
    base = undefined;
  }
  if (!base) throw Errors.badJson(Messages.csApiUnresolved, options.ctx.cause);
  options.ctx.fields.cs_api = base.baseUrl;
}

/** Checks T (delegation.md §2) and registers the job (http-api.md §9.1). */
export async function registerJob(
  deps: AppDeps,
  options: {
    ctx: RequestContext;
    delay: DelayRequest;
    job: Omit<DelegationRequest, "delayId" | "delayTimeoutMs">;
  },
): Promise<void> {
  const { delayId, delayTimeout } = options.delay;
  if (deps.shuttingDown()) throw Errors.shuttingDown();
  if (delayTimeout > MAX_DELAY_TIMEOUT_MS) {
    throw Errors.badJson(`invalid delay timeout for delayed event job: ${delayTimeout}ms`);
  }
  try {
    await deps.delegation.register({
      ...options.job,
      delayId,
      delayTimeoutMs: Number(delayTimeout),
    });
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw Errors.internal(err);
  }
  options.ctx.fields.delegated = true;
}
