/**
 * Decoding of the token and delegation request bodies (http-api.md §4–§5, D3): unknown keys
 * are ignored at every level, keys are case-sensitive, `null` means absent, and a known field of
 * the wrong JSON type makes the whole body `400 M_NOT_JSON`.
 *
 * @module
 */
import { JsonNumber, type JsonValue, parseStrictJson } from "./json.ts";

/** `openid_token` as sent; every field optional at this stage. */
export interface OpenIdTokenBody {
  "access_token"?: string;
  "matrix_server_name"?: string;
  /** Seconds; bounds how long a verified token is cached. */
  "expires_in"?: bigint;
}

/** `member` as sent. */
export interface MemberBody {
  "id"?: string;
  "claimed_user_id"?: string;
  "claimed_device_id"?: string;
}

/** Union of the legacy and MSC4195 bodies; validation happens per endpoint. */
export interface RequestBody {
  "room"?: string;
  "room_id"?: string;
  "slot_id"?: string;
  "device_id"?: string;
  "openid_token"?: OpenIdTokenBody;
  "member"?: MemberBody;
  "delay_id"?: string;
  /** Kept as a 64-bit integer so out-of-range values can be reported exactly. */
  "delay_timeout"?: bigint;
}

type JsonObject = { [key: string]: JsonValue };

/** A body that is not acceptable JSON of the expected shape. */
export class DecodeError extends Error {
  override name = "DecodeError";
}

function isObject(v: JsonValue): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof JsonNumber);
}

function str(obj: JsonObject, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new DecodeError(`field ${key} must be a string`);
  return v;
}

function int(obj: JsonObject, key: string): bigint | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!(v instanceof JsonNumber)) throw new DecodeError(`field ${key} must be an integer`);
  const n = v.asInt64();
  if (n === undefined) throw new DecodeError(`field ${key} must be a 64-bit integer literal`);
  return n;
}

function obj(parent: JsonObject, key: string): JsonObject | undefined {
  const v = parent[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new DecodeError(`field ${key} must be an object`);
  return v;
}

function defined<T extends object>(value: T): T {
  for (const k of Object.keys(value) as (keyof T)[]) {
    if (value[k] === undefined) delete value[k];
  }
  return value;
}

/**
 * Parses and type-checks a request body.
 *
 * @throws {DecodeError | SyntaxError} for anything http-api.md §4 answers with `M_NOT_JSON`.
 */
export function decodeRequestBody(bytes: Uint8Array): RequestBody {
  const doc = parseStrictJson(bytes);
  if (doc === null) return {};
  if (!isObject(doc)) throw new DecodeError("body must be a JSON object");
  const openid = obj(doc, "openid_token");
  const member = obj(doc, "member");
  let openidToken: OpenIdTokenBody | undefined;
  if (openid) {
    str(openid, "token_type");
    openidToken = defined({
      "access_token": str(openid, "access_token"),
      "matrix_server_name": str(openid, "matrix_server_name"),
      "expires_in": int(openid, "expires_in"),
    });
  }
  const body: RequestBody = {
    "room": str(doc, "room"),
    "room_id": str(doc, "room_id"),
    "slot_id": str(doc, "slot_id"),
    "device_id": str(doc, "device_id"),
    "openid_token": openidToken,
    "member": member
      ? defined({
        "id": str(member, "id"),
        "claimed_user_id": str(member, "claimed_user_id"),
        "claimed_device_id": str(member, "claimed_device_id"),
      })
      : undefined,
    "delay_id": str(doc, "delay_id"),
    "delay_timeout": int(doc, "delay_timeout"),
  };
  str(doc, "delay_cs_api_url");
  return defined(body);
}

/** Which pipeline handles an `/sfu/get` body (http-api.md §6.1). */
export function isLegacyShape(body: RequestBody): boolean {
  if (body.room !== undefined) return true;
  return body.room_id === undefined && body.slot_id === undefined && body.member === undefined;
}

/** Present, not null, not `""` (http-api.md §4). */
export function nonEmpty(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}
