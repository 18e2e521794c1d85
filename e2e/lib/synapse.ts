/**
 * The harness's Matrix client for the real Synapse (real-stack.md §4.5): registration with the
 * shared secret, OpenID tokens, call rooms, membership state events and MSC4140 delayed events.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { SYNAPSE_REGISTRATION_SECRET, SYNAPSE_URL } from "./env.ts";

/** State event type of MatrixRTC call memberships in Element Call's state-event modes. */
export const CALL_MEMBER_TYPE = "org.matrix.msc3401.call.member";

/** OpenID token exactly as the homeserver returns it (passed verbatim to the service). */
export interface OpenIdToken {
  access_token: string;
  token_type: string;
  matrix_server_name: string;
  expires_in: number;
}

/** One pending delayed event as listed by Synapse. */
export interface PendingDelayedEvent {
  delay_id: string;
  room_id: string;
  type: string;
  state_key?: string;
  delay: number;
  running_since: number;
}

/** Thrown for non-2xx answers, with the Matrix error body. */
export class MatrixHttpError extends Error {
  constructor(readonly status: number, readonly body: string, what: string) {
    super(`${what} failed: HTTP ${status} ${body}`);
  }
}

async function call<T>(
  what: string,
  path: string,
  init: { method?: string; token?: string; body?: unknown; base?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  const res = await fetch(`${init.base ?? SYNAPSE_URL}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  if (!res.ok) throw new MatrixHttpError(res.status, text, what);
  return JSON.parse(text) as T;
}

/** A registered user with one logged-in device. */
export class MatrixUser {
  constructor(
    readonly userId: string,
    readonly deviceId: string,
    readonly accessToken: string,
    /** Client-server API of the user's homeserver (A by default). */
    readonly baseUrl: string = SYNAPSE_URL,
  ) {}

  /**
   * Registers `localpart` through the shared-secret admin API (no admin rights), on homeserver
   * A or on the homeserver at `base`.
   */
  static async register(localpart: string, base: string = SYNAPSE_URL): Promise<MatrixUser> {
    const password = `pw-${localpart}`;
    const { nonce } = await call<{ nonce: string }>(
      "register nonce",
      "/_synapse/admin/v1/register",
      { base },
    );
    const mac = createHmac("sha1", SYNAPSE_REGISTRATION_SECRET)
      .update(`${nonce}\0${localpart}\0${password}\0notadmin`).digest("hex");
    const res = await call<{ user_id: string; device_id: string; access_token: string }>(
      "register",
      "/_synapse/admin/v1/register",
      { body: { nonce, username: localpart, password, admin: false, mac }, base },
    );
    return new MatrixUser(res.user_id, res.device_id, res.access_token, base);
  }

  /** An authenticated call to the user's homeserver. */
  #call<T>(what: string, path: string, init: { method?: string; body?: unknown } = {}) {
    return call<T>(what, path, { ...init, token: this.accessToken, base: this.baseUrl });
  }

  /** Invites `userId` (possibly of another homeserver) into `roomId`. */
  async invite(roomId: string, userId: string): Promise<void> {
    await this.#call("invite", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, {
      body: { user_id: userId },
    });
  }

  /** Joins `roomId` (after an invite: over federation when the room lives elsewhere). */
  async join(roomId: string): Promise<void> {
    await this.#call("join", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/join`, {
      body: {},
    });
  }

  /** Leaves `roomId`. */
  async leave(roomId: string): Promise<void> {
    await this.#call("leave", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {
      body: {},
    });
  }

  /** Kicks `userId` from `roomId` (needs the kick power level, e.g. as the room's creator). */
  async kick(roomId: string, userId: string, reason?: string): Promise<void> {
    await this.#call("kick", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/kick`, {
      body: { user_id: userId, ...(reason === undefined ? {} : { reason }) },
    });
  }

  /** Bans `userId` (possibly of another homeserver) from `roomId`. */
  async ban(roomId: string, userId: string, reason?: string): Promise<void> {
    await this.#call("ban", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/ban`, {
      body: { user_id: userId, ...(reason === undefined ? {} : { reason }) },
    });
  }

  /** The members the homeserver sees joined in `roomId`. */
  async joinedMembers(roomId: string): Promise<string[]> {
    const res = await this.#call<{ joined: Record<string, unknown> }>(
      "joined_members",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`,
    );
    return Object.keys(res.joined);
  }

  /**
   * `POST` to the homeserver's MatrixRTC LiveKit endpoints (MSC4195, forwarded to the
   * application service by MSC4512), as the client does: the user's access token, no other
   * credential. Never throws for a status.
   */
  async rtc(
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.accessToken}` },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text === "" ? {} : JSON.parse(text);
    } catch {
      json = {};
    }
    return { status: res.status, json, text };
  }

  /** Requests an OpenID token (what a MatrixRTC client sends to the service). */
  openIdToken(): Promise<OpenIdToken> {
    return call<OpenIdToken>(
      "openid request_token",
      `/_matrix/client/v3/user/${encodeURIComponent(this.userId)}/openid/request_token`,
      { token: this.accessToken, body: {}, base: this.baseUrl },
    );
  }

  /** Creates a private room in which anyone joined may send call-membership state. */
  async createCallRoom(): Promise<string> {
    const res = await call<{ room_id: string }>("createRoom", "/_matrix/client/v3/createRoom", {
      token: this.accessToken,
      base: this.baseUrl,
      body: {
        preset: "private_chat",
        power_level_content_override: { events: { [CALL_MEMBER_TYPE]: 0 } },
      },
    });
    return res.room_id;
  }

  /** Element Call's state key for this device's membership. */
  membershipStateKey(): string {
    return `_${this.userId}_${this.deviceId}`;
  }

  /** Publishes the "joined the call" membership state event. */
  async publishMembership(roomId: string, memberId: string): Promise<void> {
    await this.#putMembership(roomId, {
      application: "m.call",
      call_id: "",
      scope: "m.room",
      device_id: this.deviceId,
      expires: 14_400_000,
      member_id: memberId,
      focus_active: { type: "livekit", focus_selection: "oldest_membership" },
      foci_preferred: [{ type: "livekit", livekit_service_url: "http://127.0.0.1:8080" }],
    });
  }

  /** Schedules the delayed "leave" (empty membership) and returns its `delay_id`. */
  async scheduleDelayedLeave(roomId: string, delayMs: number): Promise<string> {
    const res = await this.#putMembership(roomId, {}, `?org.matrix.msc4140.delay=${delayMs}`);
    if (typeof res.delay_id !== "string") throw new Error("Synapse returned no delay_id");
    return res.delay_id;
  }

  async #putMembership(
    roomId: string,
    content: Record<string, unknown>,
    query = "",
  ): Promise<{ delay_id?: string }> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/` +
      `${CALL_MEMBER_TYPE}/${encodeURIComponent(this.membershipStateKey())}${query}`;
    return await call("put membership", path, {
      method: "PUT",
      token: this.accessToken,
      base: this.baseUrl,
      body: content,
    });
  }

  /** Current membership content of this device ({} once the leave was sent). */
  membershipContent(roomId: string): Promise<Record<string, unknown>> {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/` +
      `${CALL_MEMBER_TYPE}/${encodeURIComponent(this.membershipStateKey())}`;
    return call("get membership", path, { token: this.accessToken, base: this.baseUrl });
  }

  /** Whether the membership state is the empty "left" content. */
  async hasLeft(roomId: string): Promise<boolean> {
    return Object.keys(await this.membershipContent(roomId)).length === 0;
  }

  /** Capabilities the homeserver advertises to this user. */
  async capabilities(): Promise<Record<string, unknown>> {
    const res = await call<{ capabilities: Record<string, unknown> }>(
      "capabilities",
      "/_matrix/client/v3/capabilities",
      { token: this.accessToken, base: this.baseUrl },
    );
    return res.capabilities;
  }

  /** Pending delayed events of this user. */
  async pendingDelayedEvents(): Promise<PendingDelayedEvent[]> {
    const res = await call<{ delayed_events: PendingDelayedEvent[] }>(
      "list delayed events",
      "/_matrix/client/unstable/org.matrix.msc4140/delayed_events",
      { token: this.accessToken, base: this.baseUrl },
    );
    return res.delayed_events;
  }

  /** The pending delayed event with `delayId`, if it has not fired yet. */
  async pendingDelayedEvent(delayId: string): Promise<PendingDelayedEvent | undefined> {
    return (await this.pendingDelayedEvents()).find((e) => e.delay_id === delayId);
  }
}
