/**
 * Harness of the membership enforcement process tests (app-service.md §8): the service started
 * through the launcher in app-service mode against a fake Synapse (transactions, `is_joined`
 * answers) and a fake SFU that records `RemoveParticipant` / `DeleteRoom`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type FakeSfu, postSignedWebhook, startFakeSfu } from "../fakes/sfu.ts";
import { asClient, type FakeSynapseAs, startFakeSynapseAs } from "../fakes/synapse_as.ts";
import { baseEnv, type ServiceProcess, spawnService } from "../support/service.ts";
import { memberIdentity, roomAlias } from "../../lib/livekit/names.ts";
import { userId } from "../../lib/ids.ts";

export const SECRET = "devsecret-devsecret-devsecret-devsecret";
export const ROOM = "!call:hs.test";
export const SLOT = "m.call#ROOM";

/** A token holder: the LiveKit room and identity its token lets in. */
export interface Holder {
  user: string;
  room: string;
  identity: string;
  /** `room/identity`, as the fake SFU records removals. */
  key: string;
}

/** The running fakes and service. */
export interface Enforcement {
  sfu: FakeSfu;
  hs: FakeSynapseAs;
  svc: ServiceProcess;
  env: Record<string, string>;
  /** Gets a token through the C-S endpoint (the user must be joined in the fake). */
  issue(user: string, memberId: string, roomId?: string): Promise<Holder>;
  /** The participant appears on the SFU and the SFU tells the service. */
  join(h: Holder): Promise<void>;
  /** The SFU reports a leave (`CLIENT_INITIATED`, or the given reason). */
  leave(h: Holder, reason?: string): Promise<void>;
  /** Synapse pushes a transaction. */
  push(txnId: string, events: unknown[]): Promise<void>;
  restart(env?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

/** An `m.room.member` event as Synapse pushes it. */
export function memberEvent(
  user: string,
  membership: string,
  options: { roomId?: string; sender?: string; reason?: string } = {},
): Record<string, unknown> {
  return {
    type: "m.room.member",
    room_id: options.roomId ?? ROOM,
    sender: options.sender ?? user,
    state_key: user,
    event_id: `$${crypto.randomUUID()}`,
    origin_server_ts: Date.now(),
    content: { membership, ...(options.reason ? { reason: options.reason } : {}) },
  };
}

/** Starts fakes and the service with `env` added (sweep off unless set). */
export async function startEnforcement(env: Record<string, string> = {}): Promise<Enforcement> {
  const sfu = startFakeSfu();
  const hs = startFakeSynapseAs();
  hs.join(ROOM, `server:${hs.serverName}`);
  const fullEnv = {
    ...baseEnv(sfu.wsUrl),
    LIVEKIT_AS_TOKEN: hs.asToken,
    LIVEKIT_HS_TOKEN: hs.hsToken,
    LIVEKIT_HS_SERVER_NAME: hs.serverName,
    LIVEKIT_CS_API_URL_OVERRIDES: `${hs.serverName}=${hs.url}`,
    LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "0",
    LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS: "0",
    ...env,
  };
  let svc = await spawnService({ env: fullEnv });

  async function webhook(event: string, h: Holder, extra: Record<string, unknown> = {}) {
    const body = JSON.stringify({
      event,
      id: crypto.randomUUID(),
      room: { name: h.room },
      participant: { identity: h.identity, ...extra },
    });
    assert.equal(await postSignedWebhook(svc.url, body, { key: "devkey", secret: SECRET }), 200);
  }

  return {
    sfu,
    hs,
    get svc() {
      return svc;
    },
    env: fullEnv,
    async issue(user, memberId, roomId = ROOM) {
      const res = await asClient(svc.url, {
        path: "/_matrix/client/v1/rtc/livekit/get_token",
        hsToken: hs.hsToken,
        user,
        body: { url: sfu.wsUrl, room_id: roomId, slot_id: SLOT, member_id: memberId },
      });
      assert.equal(res.status, 200, res.text);
      const room = roomAlias(roomId, SLOT);
      const identity = memberIdentity(userId(user), memberId);
      return { user, room, identity, key: `${room}/${identity}` };
    },
    async join(h) {
      sfu.setPresent(h.room, h.identity, true);
      await webhook("participant_joined", h);
    },
    async leave(h, reason = "CLIENT_INITIATED") {
      sfu.setPresent(h.room, h.identity, false);
      await webhook("participant_left", h, { disconnectReason: reason });
    },
    async push(txnId, events) {
      const res = await asClient(svc.url, {
        path: `/_matrix/app/v1/transactions/${encodeURIComponent(txnId)}`,
        method: "PUT",
        hsToken: hs.hsToken,
        body: { events },
      });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, {});
    },
    async restart(extra = {}) {
      await svc.stop();
      svc = await spawnService({ env: { ...fullEnv, ...extra } });
    },
    async close() {
      await svc.stop();
      await hs.close();
      await sfu.close();
    },
  };
}
