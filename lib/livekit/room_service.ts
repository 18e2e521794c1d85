/**
 * LiveKit RoomService over Twirp with protobuf bodies (tokens-and-rooms.md §6).
 *
 * Our own client instead of `livekit-server-sdk`'s `RoomServiceClient`: that one uses the global
 * `fetch` (no custom CA list, no connection pool of ours), takes no deadline from the caller and
 * drops the path prefix of `LIVEKIT_URL`, which admins behind path-prefixed proxies rely on
 * (deno-stack.md §2). Bodies are protobuf, byte-identical to `@livekit/protocol`'s classes
 * (see `protobuf.ts` for why they are encoded here).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { LiveKitIdentity, LiveKitRoomAlias, Secret } from "../ids.ts";
import type { Logger } from "../log.ts";
import { USER_AGENT } from "../version.ts";
import type { ServiceMetrics } from "../metrics/metrics.ts";
import { readBody } from "../net/http_steps.ts";
import { OutboundError } from "../net/outbound_error.ts";
import { type AdminGrant, mintAdminToken } from "./jwt.ts";
import {
  decodeRoomCreationTime,
  encodeCreateRoomRequest,
  encodeDeleteRoomRequest,
  encodeRoomParticipantIdentity,
} from "./protobuf.ts";

/** Responses larger than this are refused (tokens-and-rooms.md §6.1). */
export const MAX_TWIRP_RESPONSE = 1024 * 1024;
/** Whole-call deadlines (tokens-and-rooms.md §6.1). */
export const CREATE_ROOM_TIMEOUT_MS = 10_000;
export const GET_PARTICIPANT_TIMEOUT_MS = 5_000;
/** Deadline of `RemoveParticipant` and `DeleteRoom`. */
export const REMOVE_TIMEOUT_MS = 10_000;
/** Room parameters of `CreateRoom` (tokens-and-rooms.md §6.5). */
export const EMPTY_TIMEOUT_S = 300;
export const DEPARTURE_TIMEOUT_S = 20;

/** Outcome of a presence lookup (tokens-and-rooms.md §6.6). */
export type Presence = "present" | "absent" | "unknown";

/** What delegation jobs need from the SFU. */
export interface ParticipantLookup {
  getParticipant(
    room: LiveKitRoomAlias,
    identity: LiveKitIdentity,
    signal?: AbortSignal,
  ): Promise<Presence>;
}

/** A failed Twirp call, with everything an operator needs to diagnose it. */
export class TwirpError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly kind: "transport" | "timeout" | "status";

  constructor(
    message: string,
    options: { kind: TwirpError["kind"]; status?: number; code?: string; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TwirpError";
    this.kind = options.kind;
    this.status = options.status;
    this.code = options.code;
  }
}

/** The RoomService calls this service makes. */
export interface RoomService extends ParticipantLookup {
  /** Creates (or finds) the room; resolves with the room's creation time in seconds. */
  createRoom(room: LiveKitRoomAlias): Promise<{ creationTime: bigint }>;
  /**
   * Monotonic time of the last answer that shows the SFU accepted our credentials (any 2xx, or a
   * Twirp error other than `unauthenticated`/`permission_denied`); undefined before the first.
   */
  lastAccepted(): number | undefined;
  close(): void;
  /**
   * `RemoveParticipant` (membership enforcement, app-service.md §8): resolves `false` when the
   * SFU answers `not_found` (already gone counts as done); other failures reject.
   */
  removeParticipant(
    room: LiveKitRoomAlias,
    identity: LiveKitIdentity,
    signal?: AbortSignal,
  ): Promise<boolean>;
  /** `DeleteRoom` (app-service.md §8): `false` when the room does not exist; failures reject. */
  deleteRoom(room: LiveKitRoomAlias, signal?: AbortSignal): Promise<boolean>;
}

/** Options of {@linkcode createRoomService}. */
export interface RoomServiceOptions {
  apiBase: string;
  key: string;
  secret: Secret;
  clock: Clock;
  log: Logger;
  caCerts?: readonly string[];
  /** Injected for tests; defaults to `fetch` with a pooled `Deno.HttpClient`. */
  fetch?: typeof fetch;
  metrics?: Pick<ServiceMetrics, "livekit" | "livekitDuration">;
}

interface TwirpErrorBody {
  code?: unknown;
  msg?: unknown;
}

/** `code` and `msg` of a Twirp error body; empty when the body is not one. */
export function parseTwirpError(body: Uint8Array): { code?: string; msg?: string } {
  try {
    const parsed: TwirpErrorBody = JSON.parse(new TextDecoder().decode(body));
    return {
      code: typeof parsed.code === "string" ? parsed.code : undefined,
      msg: typeof parsed.msg === "string" ? parsed.msg : undefined,
    };
  } catch {
    return {};
  }
}

/** The raw answer of one Twirp call. */
export interface TwirpAnswer {
  status: number;
  location: string | null;
  /** The body, at most {@linkcode MAX_TWIRP_RESPONSE} bytes. */
  body: Uint8Array;
}

/**
 * Sends one Twirp POST and reads the answer under the response cap (no redirects followed).
 * Transport failures are thrown as they are; an oversized answer is an `OutboundError`.
 * Shared by the service's calls and `check-config`'s probe (lib/cli/check_livekit.ts).
 */
export async function twirpExchange(
  doFetch: typeof fetch,
  call: { apiBase: string; method: string; token: string; body: Uint8Array; signal: AbortSignal },
): Promise<TwirpAnswer> {
  const res = await doFetch(`${call.apiBase}/twirp/livekit.RoomService/${call.method}`, {
    method: "POST",
    headers: {
      "Authorization": `Bearer ${call.token}`,
      "Content-Type": "application/protobuf",
      "Accept": "application/protobuf",
      "User-Agent": USER_AGENT,
    },
    body: call.body as Uint8Array<ArrayBuffer>,
    redirect: "manual",
    signal: call.signal,
  });
  const body = await readBody(res, MAX_TWIRP_RESPONSE, new URL(res.url || call.apiBase));
  return { status: res.status, location: res.headers.get("location"), body };
}

/** Creates the RoomService client with its own connection pool. */
export function createRoomService(options: RoomServiceOptions): RoomService {
  const { apiBase, key, secret, clock } = options;
  const client = options.fetch ? undefined : Deno.createHttpClient({
    caCerts: options.caCerts ? [...options.caCerts] : undefined,
  });
  const doFetch: typeof fetch = options.fetch ??
    ((input, init) => fetch(input, { ...init, client }));

  let accepted: number | undefined;

  async function call(
    method: string,
    grant: AdminGrant,
    body: Uint8Array,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const started = clock.monotonic();
    try {
      const data = await callOnce(method, grant, body, timeoutMs, signal);
      accepted = clock.monotonic();
      options.metrics?.livekit.inc({ method, outcome: "ok" });
      return data;
    } catch (err) {
      const outcome = err instanceof TwirpError
        ? err.kind === "status" ? (err.code ?? `http_${err.status}`) : err.kind
        : "transport";
      if (
        err instanceof TwirpError && err.kind === "status" && err.code !== undefined &&
        err.code !== "unauthenticated" && err.code !== "permission_denied"
      ) {
        accepted = clock.monotonic();
      }
      options.metrics?.livekit.inc({ method, outcome });
      throw err;
    } finally {
      options.metrics?.livekitDuration.observe({ method }, (clock.monotonic() - started) / 1000);
    }
  }

  async function callOnce(
    method: string,
    grant: AdminGrant,
    body: Uint8Array,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const token = mintAdminToken({
      key,
      secret,
      grant,
      nowSeconds: Math.floor(clock.now() / 1000),
    });
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: TwirpAnswer;
    try {
      res = await twirpExchange(doFetch, { apiBase, method, token, body, signal: combined });
    } catch (err) {
      if (err instanceof OutboundError) {
        throw new TwirpError(`${method} failed: ${err.message}`, { kind: "transport", cause: err });
      }
      const timedOut = timeout.aborted;
      throw new TwirpError(
        timedOut
          ? `${method} timed out after ${timeoutMs} ms`
          : `${method} failed: transport error`,
        { kind: timedOut ? "timeout" : "transport", cause: err },
      );
    }
    const data = res.body;
    if (res.status < 200 || res.status > 299) {
      const { code, msg } = parseTwirpError(data);
      const detail = msg ?? new TextDecoder().decode(data.subarray(0, 200)).trim();
      throw new TwirpError(
        `${method} answered HTTP ${res.status}${code ? ` (${code})` : ""}${
          detail ? `: ${detail}` : ""
        }`,
        { kind: "status", status: res.status, code },
      );
    }
    return data;
  }

  return {
    async createRoom(room) {
      const body = encodeCreateRoomRequest({
        name: room,
        emptyTimeout: EMPTY_TIMEOUT_S,
        departureTimeout: DEPARTURE_TIMEOUT_S,
        maxParticipants: 0,
      });
      const data = await call("CreateRoom", { roomCreate: true }, body, CREATE_ROOM_TIMEOUT_MS);
      return { creationTime: decodeRoomCreationTime(data) ?? 0n };
    },
    async getParticipant(room, identity, signal) {
      const body = encodeRoomParticipantIdentity({ room, identity });
      try {
        await call(
          "GetParticipant",
          { roomAdmin: true, room },
          body,
          GET_PARTICIPANT_TIMEOUT_MS,
          signal,
        );
        return "present";
      } catch (err) {
        if (err instanceof TwirpError && err.kind === "status" && err.code === "not_found") {
          return "absent";
        }
        options.log.debug("GetParticipant gave no answer", {
          room,
          identity,
          err: err instanceof Error ? err.message : String(err),
        });
        return "unknown";
      }
    },
    lastAccepted: () => accepted,
    close() {
      client?.close();
    },
    async removeParticipant(room, identity, signal) {
      const body = encodeRoomParticipantIdentity({ room, identity });
      const grant = { roomAdmin: true, room } as const;
      return await notFoundIsFalse(
        call("RemoveParticipant", grant, body, REMOVE_TIMEOUT_MS, signal),
      );
    },
    async deleteRoom(room, signal) {
      // LiveKit checks the create permission for DeleteRoom, not the room-admin one.
      const body = encodeDeleteRoomRequest({ room });
      const grant = { roomCreate: true } as const;
      return await notFoundIsFalse(call("DeleteRoom", grant, body, REMOVE_TIMEOUT_MS, signal));
    },
  };
}

async function notFoundIsFalse(pending: Promise<Uint8Array>): Promise<boolean> {
  try {
    await pending;
    return true;
  } catch (err) {
    if (err instanceof TwirpError && err.kind === "status" && err.code === "not_found") {
      return false;
    }
    throw err;
  }
}
