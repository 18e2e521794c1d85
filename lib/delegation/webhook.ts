/**
 * The `/sfu_webhook` endpoint (http-api.md §11, D8), checked in this order: method `POST`;
 * not shutting down; body ≤ 1 MiB read as raw bytes; `Authorization` present (raw JWT, a
 * `Bearer ` prefix tolerated); header `alg` HS256, claim `iss` = `LIVEKIT_KEY`, signature valid
 * with `LIVEKIT_SECRET`; `exp` present and not passed, `nbf` not in the future (60 s leeway);
 * claim `sha256` = padded base64 of SHA-256 over the exact body bytes (constant-time); only then
 * the body is parsed; exact redeliveries (same event `id` and same body digest) are ignored; the
 * event is mapped to a job signal (delegation.md §8) and handed to the manager. No CORS on this
 * path.
 *
 * With several replicas (replicas.md §3) the hand-over may go through Redis to the replica that
 * drives the job: then `200` means the signal was appended to that replica's stream, and a
 * failed append is answered `503` so that the SFU delivers the event again.
 *
 * Verified here over the raw body bytes rather than with `livekit-server-sdk`'s
 * `WebhookReceiver`, which hashes a re-decoded string, allows 10 s of clock skew instead of the
 * reference's 60 s, and parses before checking every claim (deno-stack.md §2).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { Clock } from "../clock.ts";
import { MAX_WEBHOOK_BODY, readBodyLimited } from "../http/body.ts";
import { ApiError, Errors } from "../http/errors.ts";
import type { Secret } from "../ids.ts";
import { describeError, type Logger } from "../log.ts";
import type { JobSignal } from "./state_machine.ts";
import type { DelegationWatch } from "./watch.ts";
import {
  EventIdCache,
  parseWebhookEvent,
  signalForEvent,
  type WebhookEvent,
} from "./webhook_events.ts";

/** Clock skew tolerated on `exp` and `nbf`, in seconds. */
export const WEBHOOK_LEEWAY_S = 60;

/** Answer when the signal could not be handed to the replica that drives the job. */
const FORWARD_FAILED = new ApiError(
  503,
  "M_UNKNOWN",
  "Could not hand the event to the replica that drives the job; please retry",
);

/** What the webhook checks a token against. */
export interface WebhookKeys {
  key: string;
  secret: Secret;
}

function decodeJsonPart(part: string): Record<string, unknown> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) return undefined;
  try {
    const v: unknown = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(part, "base64url")),
    );
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? v as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return timingSafeEqual(a, b);
}

/**
 * Verifies a webhook token for `body` (steps 5–7 of http-api.md §11).
 *
 * @returns undefined when valid, else a reason for the WARN log (never the token).
 */
export function verifyWebhookToken(
  token: string,
  options: { body: Uint8Array; keys: WebhookKeys; nowMs: number },
): string | undefined {
  const checked = checkWebhookToken(token, options);
  return typeof checked === "string" ? checked : undefined;
}

/**
 * {@linkcode verifyWebhookToken} that also returns the verified body digest (the `sha256`
 * claim), which identifies the body for the redelivery check.
 */
function checkWebhookToken(
  token: string,
  options: { body: Uint8Array; keys: WebhookKeys; nowMs: number },
): string | { digest: string } {
  const parts = token.split(".");
  if (parts.length !== 3) return "token is not a JWT";
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJsonPart(h);
  if (!header) return "unreadable token header";
  if (header.alg !== "HS256") return "token algorithm is not HS256";
  const claims = decodeJsonPart(p);
  if (!claims) return "unreadable token claims";
  if (claims.iss !== options.keys.key) return "token issuer is not the configured API key";
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return "malformed token signature";
  const expected = createHmac("sha256", options.keys.secret.reveal()).update(`${h}.${p}`).digest();
  if (!constantTimeEqual(new Uint8Array(Buffer.from(s, "base64url")), new Uint8Array(expected))) {
    return "invalid token signature";
  }
  const now = options.nowMs / 1000;
  if (typeof claims.exp !== "number") return "token has no exp claim";
  if (now > claims.exp + WEBHOOK_LEEWAY_S) return "token expired";
  if (claims.nbf !== undefined) {
    if (typeof claims.nbf !== "number") return "token nbf claim is not a number";
    if (claims.nbf > now + WEBHOOK_LEEWAY_S) return "token not valid yet";
  }
  if (typeof claims.sha256 !== "string") return "token has no sha256 claim";
  const digest = createHash("sha256").update(options.body).digest("base64");
  if (!constantTimeEqual(Buffer.from(claims.sha256, "utf8"), Buffer.from(digest, "utf8"))) {
    return "body checksum does not match the token";
  }
  return { digest };
}

/** Options of {@linkcode createWebhookHandler}. */
export interface WebhookHandlerOptions {
  keys: WebhookKeys;
  clock: Clock;
  log: Logger;
  shuttingDown: () => boolean;
  /**
   * Hands a signal to the job of exactly this key. A promise means the signal goes to another
   * replica; it resolves false when that could not be arranged (the answer is then `503`).
   */
  deliver: (room: string, identity: string, signal: JobSignal) => void | Promise<boolean>;
  events?: EventIdCache;
  watch?: DelegationWatch;
  /**
   * Sees every verified, non-duplicate event (membership enforcement re-checks joins,
   * app-service.md §8); must not block.
   */
  observe?: (event: WebhookEvent) => void;
}

/** Builds the complete `/sfu_webhook` handler. */
export function createWebhookHandler(
  options: WebhookHandlerOptions,
): (req: Request) => Promise<Response> {
  const { clock, log } = options;
  const events = options.events ?? new EventIdCache();
  const unauthorized = (reason: string) => {
    log.warn("Rejected webhook", { reason });
    options.watch?.webhook("", "unauthorized");
    return Errors.unauthorized().toResponse();
  };
  return async (req) => {
    if (req.method !== "POST") {
      await req.body?.cancel().catch(() => {});
      return Errors.methodNotAllowed("POST").toResponse();
    }
    if (options.shuttingDown()) return Errors.shuttingDown().toResponse();
    let body: Uint8Array;
    try {
      body = await readBodyLimited(req, { maxBytes: MAX_WEBHOOK_BODY });
    } catch (err) {
      if (err instanceof ApiError) return err.toResponse();
      return Errors.notJson(err).toResponse();
    }
    let token = req.headers.get("authorization");
    if (token === null || token === "") return unauthorized("missing Authorization header");
    if (token.startsWith("Bearer ")) token = token.slice("Bearer ".length);
    const checked = checkWebhookToken(token, { body, keys: options.keys, nowMs: clock.now() });
    if (typeof checked === "string") return unauthorized(checked);
    const { digest } = checked;
    let event;
    try {
      event = parseWebhookEvent(body);
    } catch (err) {
      log.debug("Unreadable webhook body", { err: describeError(err) });
      options.watch?.webhook("", "bad_body");
      return Errors.notJson().toResponse();
    }
    const now = clock.monotonic();
    if (event.id !== "" && events.has(event.id, digest, now)) {
      log.debug("Duplicate webhook event ignored", { id: event.id, event: event.event });
      options.watch?.webhook(event.event, "duplicate");
      return new Response(null, { status: 200 });
    }
    try {
      options.observe?.(event);
    } catch (err) {
      log.error("Webhook observer failed", { err: describeError(err) });
    }
    const signal = signalForEvent(event);
    if (signal) {
      log.debug("Webhook event", {
        id: event.id,
        event: event.event,
        room: event.room,
        identity: event.identity,
        signal,
      });
      const handed = options.deliver(event.room, event.identity, signal);
      if (handed !== undefined && !(await handed)) {
        options.watch?.webhook(event.event, "unavailable");
        return FORWARD_FAILED.toResponse();
      }
      options.watch?.webhook(event.event, "accepted");
    } else {
      log.debug("Webhook event ignored", { id: event.id, event: event.event });
      options.watch?.webhook(event.event, "ignored");
    }
    if (event.id !== "") events.add(event.id, digest, now);
    return new Response(null, { status: 200 });
  };
}
