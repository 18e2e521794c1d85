/**
 * A fake LiveKit SFU: Twirp `CreateRoom`, `GetParticipant`, `RemoveParticipant` and `DeleteRoom`
 * (the last two recorded in `removed` / `deleted`) with protobuf bodies on
 * 127.0.0.1:0, checking the admin token like LiveKit does, with scriptable presence and
 * failures, plus a webhook signer that produces what LiveKit sends to `/sfu_webhook`.
 *
 * @module
 */
import { createHash, createHmac } from "node:crypto";
import { Buffer } from "node:buffer";
import {
  CreateRoomRequest,
  DeleteRoomRequest,
  Room,
  RoomParticipantIdentity,
} from "@livekit/protocol";
import { TokenVerifier } from "livekit-server-sdk";

/** A recorded Twirp call. */
export interface SfuCall {
  method: string;
  path: string;
  contentType: string | null;
  body: Uint8Array;
  grant: Record<string, unknown> | undefined;
  room?: string;
  identity?: string;
}

/** Options of {@linkcode startFakeSfu}. */
export interface FakeSfuOptions {
  key?: string;
  secret?: string;
  /** Path prefix the SFU is served under (`/livekit/sfu`). */
  prefix?: string;
  /** Fixed port (to restart a fake on the same address); default: any free port. */
  port?: number;
}

/** The running fake. */
export interface FakeSfu {
  readonly url: string;
  readonly wsUrl: string;
  readonly calls: SfuCall[];
  /** Participants present, as `room/identity` keys. */
  readonly present: Set<string>;
  /** Rooms that exist. */
  readonly rooms: Set<string>;
  /** Successful `RemoveParticipant` calls, as `room/identity`, in order. */
  readonly removed: string[];
  /** Successful `DeleteRoom` calls, by room name, in order. */
  readonly deleted: string[];
  /** Next responses override: status + body (Twirp JSON) or a delay. */
  failNext: Array<{ status: number; body: string; contentType?: string } | { delayMs: number }>;
  setPresent(room: string, identity: string, present: boolean): void;
  close(): Promise<void>;
}

function twirpError(status: number, code: string, msg: string): Response {
  return new Response(JSON.stringify({ code, msg }), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

/** Starts the fake SFU. */
export function startFakeSfu(options: FakeSfuOptions = {}): FakeSfu {
  const key = options.key ?? "devkey";
  const secret = options.secret ?? "devsecret-devsecret-devsecret-devsecret";
  const prefix = options.prefix ?? "";
  const verifier = new TokenVerifier(key, secret);
  const calls: SfuCall[] = [];
  const present = new Set<string>();
  const rooms = new Set<string>();
  const removed: string[] = [];
  const deleted: string[] = [];
  const state = { failNext: [] as FakeSfu["failNext"] };

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, async (req) => {
    const url = new URL(req.url);
    const body = new Uint8Array(await req.arrayBuffer());
    const method = url.pathname.startsWith(`${prefix}/twirp/livekit.RoomService/`)
      ? url.pathname.slice(`${prefix}/twirp/livekit.RoomService/`.length)
      : "";
    const call: SfuCall = {
      method,
      path: url.pathname,
      contentType: req.headers.get("content-type"),
      body,
      grant: undefined,
    };
    calls.push(call);
    if (method === "") return twirpError(404, "bad_route", "no such route");
    const auth = req.headers.get("authorization") ?? "";
    try {
      const claims = await verifier.verify(auth.replace(/^Bearer /, ""));
      call.grant = claims.video as Record<string, unknown> | undefined;
    } catch {
      return twirpError(401, "unauthenticated", "invalid token");
    }
    const scripted = state.failNext.shift();
    if (scripted && "delayMs" in scripted) {
      await new Promise((r) => setTimeout(r, scripted.delayMs));
    } else if (scripted) {
      return new Response(scripted.body, {
        status: scripted.status,
        headers: { "Content-Type": scripted.contentType ?? "application/json" },
      });
    }
    if (method === "CreateRoom") {
      if (call.grant?.roomCreate !== true) return twirpError(403, "permission_denied", "no grant");
      const msg = CreateRoomRequest.fromBinary(body);
      call.room = msg.name;
      rooms.add(msg.name);
      const room = new Room({ sid: "RM_fake", name: msg.name, creationTime: 1784800000n });
      return new Response(room.toBinary() as Uint8Array<ArrayBuffer>, {
        headers: { "Content-Type": "application/protobuf" },
      });
    }
    if (method === "GetParticipant") {
      const msg = RoomParticipantIdentity.fromBinary(body);
      call.room = msg.room;
      call.identity = msg.identity;
      if (call.grant?.roomAdmin !== true || call.grant?.room !== msg.room) {
        return twirpError(403, "permission_denied", "no grant");
      }
      if (!present.has(`${msg.room}/${msg.identity}`)) {
        return twirpError(404, "not_found", "participant not found");
      }
      return new Response(new Uint8Array([0x12, 0x01, 0x41]), {
        headers: { "Content-Type": "application/protobuf" },
      });
    }
    if (method === "RemoveParticipant") {
      const msg = RoomParticipantIdentity.fromBinary(body);
      call.room = msg.room;
      call.identity = msg.identity;
      if (call.grant?.roomAdmin !== true || call.grant?.room !== msg.room) {
        return twirpError(403, "permission_denied", "no grant");
      }
      if (!present.delete(`${msg.room}/${msg.identity}`)) {
        return twirpError(404, "not_found", "participant not found");
      }
      removed.push(`${msg.room}/${msg.identity}`);
      return new Response(new Uint8Array(), {
        headers: { "Content-Type": "application/protobuf" },
      });
    }
    if (method === "DeleteRoom") {
      const msg = DeleteRoomRequest.fromBinary(body);
      call.room = msg.room;
      if (call.grant?.roomCreate !== true) return twirpError(403, "permission_denied", "no grant");
      if (!rooms.delete(msg.room)) return twirpError(404, "not_found", "room not found");
      for (const key of [...present]) if (key.startsWith(`${msg.room}/`)) present.delete(key);
      deleted.push(msg.room);
      return new Response(new Uint8Array(), {
        headers: { "Content-Type": "application/protobuf" },
      });
    }
    return twirpError(404, "bad_route", "unknown method");
  });
  const base = `http://127.0.0.1:${server.addr.port}${prefix}`;
  return {
    url: base,
    wsUrl: base.replace(/^http/, "ws"),
    calls,
    present,
    rooms,
    removed,
    deleted,
    get failNext() {
      return state.failNext;
    },
    set failNext(v) {
      state.failNext = v;
    },
    setPresent(room, identity, isPresent) {
      if (isPresent) present.add(`${room}/${identity}`);
      else present.delete(`${room}/${identity}`);
    },
    async close() {
      await server.shutdown();
    },
  };
}

/** Signs a webhook body like LiveKit: raw JWT with `sha256` = padded base64 of the body hash. */
export function signWebhook(
  body: string | Uint8Array,
  options: { key: string; secret: string; nowSeconds: number; ttlSeconds?: number },
): string {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const sha = createHash("sha256").update(bytes).digest("base64");
  const header = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString("base64url");
  const claims = {
    iss: options.key,
    nbf: options.nowSeconds,
    iat: options.nowSeconds,
    exp: options.nowSeconds + (options.ttlSeconds ?? 300),
    sha256: sha,
  };
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${input}.${createHmac("sha256", options.secret).update(input).digest("base64url")}`;
}

/**
 * POSTs `body` to the service's `/sfu_webhook` signed as LiveKit would sign it now, and answers
 * the status (the body is discarded).
 */
export async function postSignedWebhook(
  serviceUrl: string,
  body: string,
  credentials: { key: string; secret: string },
): Promise<number> {
  const res = await fetch(`${serviceUrl}/sfu_webhook`, {
    method: "POST",
    headers: {
      "Content-Type": "application/webhook+json",
      Authorization: signWebhook(body, {
        ...credentials,
        nowSeconds: Math.floor(Date.now() / 1000),
      }),
    },
    body,
  });
  await res.body?.cancel();
  return res.status;
}
