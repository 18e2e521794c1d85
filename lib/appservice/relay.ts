/**
 * Relaying a token request to a remote server (app-service.md §5.1 step 7; MSC4195): the own
 * homeserver signs and sends it over federation (`fed_proxy`, MSC4512), first to the unstable
 * path (what deployed services serve today), once more to the `v1` path when the remote does not
 * know the unstable one.
 *
 * | Remote answer | Client gets |
 * | --- | --- |
 * | 2xx with a string `jwt` | `200 {"jwt"}` |
 * | `403 M_FORBIDDEN` | `403 M_FORBIDDEN` |
 * | `400 M_INVALID_PARAM` | `400 M_INVALID_PARAM` |
 * | anything else; `fed_proxy` itself failing | `502 M_UNKNOWN` |
 *
 * The remote's texts are never passed on (MSC4195 "information disclosure"); the log has them.
 *
 * @module
 */
import type { RequestContext } from "../http/context.ts";
import { describeError } from "../log.ts";
import type { AppServiceDeps } from "./deps.ts";
import { AsErrors } from "./inbound.ts";
import type { RelayAnswer } from "./homeserver.ts";

/** The remote paths, in the order they are tried. */
export const RELAY_PATHS = [
  "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
  "/_matrix/federation/v1/rtc/livekit/get_token",
] as const;

function errcodeOf(content: unknown): string | undefined {
  if (typeof content !== "object" || content === null || Array.isArray(content)) return undefined;
  const code = (content as Record<string, unknown>).errcode;
  return typeof code === "string" ? code : undefined;
}

/** Whether the remote does not serve the path (so the other variant may be tried). */
function unknownPath(answer: RelayAnswer): boolean {
  return answer.status === 404 || errcodeOf(answer.content) === "M_UNRECOGNIZED";
}

/**
 * Relays the request and returns the remote's token.
 *
 * @throws {import("../http/errors.ts").ApiError} 403 / 400 relayed, 502 otherwise.
 */
export async function relayToken(
  deps: AppServiceDeps,
  ctx: RequestContext,
  options: { destination: string; body: Record<string, string> },
): Promise<string> {
  const { metrics, log } = deps;
  let answer: RelayAnswer | undefined;
  let path: string = RELAY_PATHS[0];
  for (const candidate of RELAY_PATHS) {
    path = candidate;
    try {
      answer = await deps.homeserver.fedProxy(
        { destination: options.destination, path, body: options.body },
        ctx.signal,
      );
    } catch (err) {
      metrics.relays.inc({ outcome: "fed_proxy_failed" });
      log.warn("Relaying the token request failed", {
        request_id: ctx.id,
        destination: options.destination,
        error: describeError(err),
      });
      throw AsErrors.upstream(err);
    }
    if (!unknownPath(answer)) break;
    if (candidate !== RELAY_PATHS[RELAY_PATHS.length - 1]) {
      metrics.relays.inc({ outcome: "fallback_v1" });
    }
  }
  const { status, content } = answer!;
  const errcode = errcodeOf(content);
  ctx.fields.relay_status = status;
  const cause = `remote ${options.destination} answered ${status}${errcode ? ` ${errcode}` : ""}`;
  if (status >= 200 && status <= 299) {
    const jwt = typeof content === "object" && content !== null && !Array.isArray(content)
      ? (content as Record<string, unknown>).jwt
      : undefined;
    if (typeof jwt === "string" && jwt !== "") {
      metrics.relays.inc({ outcome: "ok" });
      return jwt;
    }
    metrics.relays.inc({ outcome: "other" });
    throw AsErrors.upstream(`${cause} without a jwt (${path})`);
  }
  if (status === 403 && errcode === "M_FORBIDDEN") {
    metrics.relays.inc({ outcome: "forbidden" });
    throw AsErrors.relayedForbidden(cause);
  }
  if (status === 400 && errcode === "M_INVALID_PARAM") {
    metrics.relays.inc({ outcome: "invalid_param" });
    throw AsErrors.relayedInvalidParam(cause);
  }
  metrics.relays.inc({ outcome: "other" });
  log.warn("Remote server refused the relayed token request", {
    request_id: ctx.id,
    destination: options.destination,
    path,
    status,
    errcode,
  });
  throw AsErrors.upstream(cause);
}
