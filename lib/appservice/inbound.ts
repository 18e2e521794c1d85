/**
 * What every app-service path shares (app-service.md §3, §4): the path table (stable and
 * unstable variants), the hs_token check, body decoding, the identity headers Synapse adds, and
 * the error texts.
 *
 * Error texts disclose nothing (MSC4195 "Error handling and information disclosure"): a user who
 * is not joined and a room the homeserver does not know get the same `403`; upstream answers are
 * never passed on. The cause of every refusal goes to the log instead.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Secret } from "../ids.ts";
import { ApiError, Errors } from "../http/errors.ts";
import { readBodyLimited } from "../http/body.ts";
import { JsonNumber, type JsonValue, parseStrictJson } from "../http/json.ts";
import { parseServerName } from "../matrix/server_name.ts";

/** The app-service endpoints. */
export type AppServiceEndpoint =
  | "cs_get_token"
  | "ss_get_token"
  | "cs_delegate"
  | "ping"
  | "transactions";

/** A matched app-service path. */
export interface AppServiceRoute {
  endpoint: AppServiceEndpoint;
  /** Metric label: the path, with `{txnId}` for transactions. */
  label: string;
  /** The method the endpoint accepts (`POST`, `PUT` for transactions). */
  method: "POST" | "PUT";
  /** Transaction ID (percent-decoded), for `transactions`. */
  txnId?: string;
}

const UNSTABLE = "unstable/io.element.msc4195";

/** Exact paths of app-service.md §4 (both variants). */
const PATHS: ReadonlyMap<string, AppServiceEndpoint> = new Map([
  ["/_matrix/client/v1/rtc/livekit/get_token", "cs_get_token"],
  [`/_matrix/client/${UNSTABLE}/rtc/livekit/get_token`, "cs_get_token"],
  ["/_matrix/federation/v1/rtc/livekit/get_token", "ss_get_token"],
  [`/_matrix/federation/${UNSTABLE}/rtc/livekit/get_token`, "ss_get_token"],
  ["/_matrix/client/v1/rtc/livekit/delegate_delayed_leave", "cs_delegate"],
  [`/_matrix/client/${UNSTABLE}/rtc/livekit/delegate_delayed_leave`, "cs_delegate"],
  ["/_matrix/app/v1/ping", "ping"],
]);

const TRANSACTIONS = /^\/_matrix\/app\/v1\/transactions\/([^/]+)$/;

/** The app-service route of a path, or undefined. */
export function matchAppServicePath(path: string): AppServiceRoute | undefined {
  const endpoint = PATHS.get(path);
  if (endpoint) return { endpoint, label: path, method: "POST" };
  const m = TRANSACTIONS.exec(path);
  if (!m) return undefined;
  let txnId: string;
  try {
    txnId = decodeURIComponent(m[1]!);
  } catch {
    txnId = m[1]!;
  }
  return {
    endpoint: "transactions",
    label: "/_matrix/app/v1/transactions/{txnId}",
    method: "PUT",
    txnId,
  };
}

/** Client-visible errors of the app-service endpoints. */
export const AsErrors = {
  missingToken: () => new ApiError(401, "M_MISSING_TOKEN", "Missing homeserver access token"),
  unknownToken: () => new ApiError(401, "M_UNKNOWN_TOKEN", "Unrecognised homeserver access token"),
  missingField: (field: string) =>
    new ApiError(400, "M_BAD_JSON", `The request body is missing \`${field}\``),
  /** Missing identity header (the request did not come through the homeserver's proxy). */
  unauthorized: (cause: string) => Errors.unauthorized(cause),
  invalidUser: (cause: string) =>
    new ApiError(400, "M_INVALID_PARAM", "Invalid user ID", { cause }),
  wrongUrl: (cause: string) =>
    new ApiError(400, "M_INVALID_PARAM", "The requested SFU is not served here", { cause }),
  unknownDelayId: (cause: string) =>
    new ApiError(400, "M_INVALID_PARAM", "Unknown delay_id", { cause }),
  /** Not joined, unknown room, other server: all the same to the client. */
  forbidden: (cause: string) =>
    new ApiError(403, "M_FORBIDDEN", "Not allowed to join this call", { cause }),
  /** The homeserver or a remote server could not answer (app-service.md §5.1). */
  upstream: (cause: unknown) =>
    new ApiError(502, "M_UNKNOWN", "The request could not be completed", { cause }),
  unavailable: (cause: unknown) =>
    new ApiError(503, "M_UNKNOWN", "The request could not be completed", { cause }),
  /** A relayed refusal, passed on with our own text (MSC4195: relay 400/403, not the body). */
  relayedInvalidParam: (cause: string) =>
    new ApiError(400, "M_INVALID_PARAM", "The remote server refused the request", { cause }),
  relayedForbidden: (cause: string) =>
    new ApiError(403, "M_FORBIDDEN", "Not allowed to join this call", { cause }),
};

function digest(value: string): Uint8Array {
  return createHash("sha256").update(value, "utf8").digest();
}

/**
 * app-service.md §3: `Authorization: Bearer <hs_token>`, compared in constant time (both sides
 * hashed first, so the comparison does not depend on lengths either).
 *
 * @throws {ApiError} 401 `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN`.
 */
export function checkHsToken(header: string | null, hsToken: Secret<"hs_token">): void {
  if (header === null || header.trim() === "") throw AsErrors.missingToken();
  const m = /^Bearer +(.+)$/i.exec(header.trim());
  const presented = m ? m[1]!.trim() : "";
  const ok = timingSafeEqual(digest(presented), digest(hsToken.reveal()));
  if (!ok || presented === "") throw AsErrors.unknownToken();
}

/** Decoded string fields of an app-service body; absent and `null` are undefined. */
export type Fields<K extends string> = { [P in K]: string | undefined };

class DecodeError extends Error {
  override name = "DecodeError";
}

function isObject(v: JsonValue): v is { [key: string]: JsonValue } {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof JsonNumber);
}

/**
 * Reads (64 KiB, 30 s) and decodes a body with the rules of http-api.md §4 (D3): unknown keys
 * ignored, keys case-sensitive, `null` = absent, a known field of another type than string →
 * `400 M_NOT_JSON`.
 */
export async function readFields<K extends string>(
  req: Request,
  names: readonly K[],
  maxBytes: number,
): Promise<Fields<K>> {
  const bytes = await readBodyLimited(req, { maxBytes });
  try {
    const doc = parseStrictJson(bytes);
    const out = {} as Fields<K>;
    if (doc === null) {
      for (const n of names) out[n] = undefined;
      return out;
    }
    if (!isObject(doc)) throw new DecodeError("body must be a JSON object");
    for (const n of names) {
      const v = doc[n];
      if (v === undefined || v === null) out[n] = undefined;
      else if (typeof v === "string") out[n] = v;
      else throw new DecodeError(`field ${n} must be a string`);
    }
    return out;
  } catch (err) {
    throw Errors.notJson(err);
  }
}

/** The required fields in order; the first missing (absent, null or empty) one is named. */
export function requireFields<K extends string, R extends K>(
  fields: Fields<K>,
  required: readonly R[],
): Fields<K> & { [P in R]: string } {
  for (const n of required) {
    const v = fields[n];
    if (v === undefined || v === "") throw AsErrors.missingField(n);
  }
  return fields as Fields<K> & { [P in R]: string };
}

/** A syntactically valid Matrix user ID `@localpart:server_name`, split, or undefined. */
export function parseUserId(text: string): { localpart: string; server: string } | undefined {
  if (!text.startsWith("@") || new TextEncoder().encode(text).length > 255) return undefined;
  const colon = text.indexOf(":");
  if (colon < 2) return undefined;
  const localpart = text.slice(1, colon);
  const server = text.slice(colon + 1);
  // Historical user IDs allow most printable ASCII in the localpart; never controls or spaces.
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(localpart)) return undefined;
  if (!parseServerName(server)) return undefined;
  return { localpart, server };
}
