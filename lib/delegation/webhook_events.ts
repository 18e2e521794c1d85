/**
 * LiveKit webhook events after verification (http-api.md §11, delegation.md §8): reading the
 * protobuf-JSON `WebhookEvent` (both lowerCamelCase and snake_case names, enums by name or
 * number, unknown fields ignored), mapping it to a job signal, and the bounded cache of
 * (event ID, body digest) pairs used to ignore exact redeliveries.
 *
 * @module
 */
import type { JobSignal } from "./state_machine.ts";

/** The fields of a `WebhookEvent` the service uses. */
export interface WebhookEvent {
  event: string;
  id: string;
  room: string;
  identity: string;
  /** `participant.disconnectReason` as a number; undefined when absent. */
  disconnectReason: number | undefined;
}

/** LiveKit `DisconnectReason` names and numbers. */
export const DISCONNECT_REASONS: Readonly<Record<string, number>> = {
  UNKNOWN_REASON: 0,
  CLIENT_INITIATED: 1,
  DUPLICATE_IDENTITY: 2,
  SERVER_SHUTDOWN: 3,
  PARTICIPANT_REMOVED: 4,
  ROOM_DELETED: 5,
  STATE_MISMATCH: 6,
  JOIN_FAILURE: 7,
  MIGRATION: 8,
  SIGNAL_CLOSE: 9,
  ROOM_CLOSED: 10,
  USER_UNAVAILABLE: 11,
  USER_REJECTED: 12,
  SIP_TRUNK_FAILURE: 13,
  CONNECTION_TIMEOUT: 14,
  MEDIA_FAILURE: 15,
  AGENT_ERROR: 16,
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function reason(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isInteger(v) ? v : -1;
  if (typeof v === "string") return DISCONNECT_REASONS[v] ?? -1;
  return undefined;
}

/**
 * Reads the used fields of a webhook body. Fields of the wrong type count as absent.
 *
 * @throws {SyntaxError} when the body is not UTF-8 JSON or not an object.
 */
export function parseWebhookEvent(body: Uint8Array): WebhookEvent {
  const value: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  if (!isRecord(value)) throw new SyntaxError("webhook body is not a JSON object");
  const room = isRecord(value.room) ? value.room : {};
  const participant = isRecord(value.participant) ? value.participant : {};
  return {
    event: str(value.event),
    id: str(value.id),
    room: str(room.name),
    identity: str(participant.identity),
    disconnectReason: reason(participant.disconnectReason ?? participant.disconnect_reason),
  };
}

/**
 * The job signal of an event (delegation.md §8), or undefined for events that are ignored
 * (other event types, missing room name or identity).
 */
export function signalForEvent(event: WebhookEvent): JobSignal | undefined {
  if (event.room === "" || event.identity === "") return undefined;
  switch (event.event) {
    case "participant_joined":
      return "ParticipantConnected";
    case "participant_left":
    case "participant_connection_aborted":
      return leaveSignal(event.disconnectReason);
    default:
      return undefined;
  }
}

function leaveSignal(reason: number | undefined): JobSignal {
  switch (reason) {
    case DISCONNECT_REASONS.CLIENT_INITIATED:
      return "ParticipantDisconnectedIntentionally";
    case DISCONNECT_REASONS.DUPLICATE_IDENTITY:
    case DISCONNECT_REASONS.MIGRATION:
      return "ParticipantMaybeGone";
    default:
      return "ParticipantConnectionAborted";
  }
}

/** How long a delivery is remembered (longer than LiveKit's 5-minute token plus leeway). */
export const EVENT_ID_TTL_MS = 10 * 60_000;
/** Most deliveries remembered; the oldest is evicted first. */
export const EVENT_ID_CAPACITY = 10_000;

/**
 * Remembered webhook deliveries, keyed by the pair (event `id`, body digest) (http-api.md §11):
 * only an exact redelivery (same `id`, same body) is a duplicate, so distinct events that reuse
 * an `id` are all processed. Insertion order is expiry order, the TTL being fixed.
 */
export class EventIdCache {
  readonly #expiry = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #capacity: number;

  constructor(options: { ttlMs?: number; capacity?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? EVENT_ID_TTL_MS;
    this.#capacity = options.capacity ?? EVENT_ID_CAPACITY;
  }

  /** Number of pairs held. */
  get size(): number {
    return this.#expiry.size;
  }

  /** Whether the pair was remembered and has not expired at `nowMs`. */
  has(id: string, digest: string, nowMs: number): boolean {
    const at = this.#expiry.get(pairKey(id, digest));
    return at !== undefined && at > nowMs;
  }

  /** Remembers the pair until `nowMs` + TTL, evicting expired and, if full, the oldest pairs. */
  add(id: string, digest: string, nowMs: number): void {
    for (const [old, at] of this.#expiry) {
      if (at > nowMs) break;
      this.#expiry.delete(old);
    }
    const key = pairKey(id, digest);
    this.#expiry.delete(key);
    while (this.#expiry.size >= this.#capacity) {
      const oldest = this.#expiry.keys().next();
      if (oldest.done) break;
      this.#expiry.delete(oldest.value);
    }
    this.#expiry.set(key, nowMs + this.#ttlMs);
  }
}

/** The digest is base64 (no NUL), so NUL separates the two parts unambiguously. */
function pairKey(id: string, digest: string): string {
  return `${digest}\0${id}`;
}
