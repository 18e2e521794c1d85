/**
 * Minimal HS256 JWT helpers for the harness: decode the service's tokens, verify webhook
 * signatures, and mint tokens for the stack checks and Twirp calls (tokens-and-rooms.md §4,
 * §6.2; http-api.md §11).
 *
 * @module
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

/** A decoded (not verified) compact JWS. */
export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

/** Signs `payload` with HS256 and header `{"alg":"HS256","typ":"JWT"}`. */
export function signHs256(payload: Record<string, unknown>, secret: string): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(payload));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** Decodes header and payload without checking the signature (as Element Call does). */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.split(".");
  if (parts.length !== 3) throw new SyntaxError("Cannot decode JWT: expected three parts");
  const [head, body] = parts as [string, string, string];
  return {
    header: JSON.parse(Buffer.from(head, "base64url").toString("utf8")),
    payload: JSON.parse(Buffer.from(body, "base64url").toString("utf8")),
  };
}

/** Whether `token` carries a valid HS256 signature made with `secret`. */
export function verifyHs256(token: string, secret: string): boolean {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  const actual = Buffer.from(parts[2] ?? "", "base64url");
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Padded standard base64 SHA-256 of a webhook body: the `sha256` claim LiveKit signs. */
export function bodySha256(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("base64");
}

/** Mints an admin token for LiveKit's RoomService with the given `video` grant (10 min). */
export function adminToken(
  video: Record<string, unknown>,
  opts: { key: string; secret: string },
): string {
  const now = Math.floor(Date.now() / 1000);
  return signHs256({ iss: opts.key, iat: now, nbf: now, exp: now + 600, video }, opts.secret);
}

/** Mints a client join token shaped like the service's (used before the service is involved). */
export function joinToken(
  opts: { key: string; secret: string; room: string; identity: string },
): string {
  const now = Math.floor(Date.now() / 1000);
  return signHs256({
    iss: opts.key,
    sub: opts.identity,
    iat: now,
    nbf: now,
    exp: now + 3600,
    identity: opts.identity,
    video: {
      roomJoin: true,
      room: opts.room,
      canPublish: true,
      canSubscribe: true,
      canUpdateOwnMetadata: true,
    },
  }, opts.secret);
}
