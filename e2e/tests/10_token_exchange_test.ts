/**
 * Scenario 1 (real-stack.md §10 #1–#2): two users of the real Synapse get OpenID tokens through
 * the client-server API and exchange them at `/get_token` (MSC4195 body) and `/sfu/get` (legacy
 * body); the participant helper joins the SFU with each JWT, and `ListParticipants` on the SFU
 * shows exactly the identities we computed, in the room we computed (tokens-and-rooms.md §2).
 *
 * @module
 */
import assert from "node:assert/strict";
import { LIVEKIT_KEY, LIVEKIT_WS_URL, uniqueSuffix } from "../lib/env.ts";
import { checkTokenAnswer, newCall } from "../lib/call.ts";
import { legacyIdentity } from "../lib/hash.ts";
import { listRooms, participantIdentities } from "../lib/livekit.ts";
import { Participant } from "../lib/participant.ts";
import { waitFor } from "../lib/poll.ts";
import { getTokenBody, legacyBody } from "../lib/requests.ts";
import { Service } from "../lib/service.ts";
import { MatrixUser } from "../lib/synapse.ts";

Deno.test("token exchange: /get_token and /sfu/get users meet in the computed SFU room", async () => {
  const service = await Service.start({ name: "exchange" });
  const participants: Participant[] = [];
  try {
    const alice = await newCall("alice");
    const bob = await MatrixUser.register(`bob-${uniqueSuffix()}`);
    const bobIdentity = legacyIdentity(bob.userId, bob.deviceId);

    const a = await service.post(
      "/get_token",
      getTokenBody(alice.user, {
        roomId: alice.roomId,
        openId: await alice.user.openIdToken(),
        memberId: alice.memberId,
      }),
    );
    assert.equal(a.status, 200, JSON.stringify(a.json));
    const claims = checkTokenAnswer(a.json, {
      url: LIVEKIT_WS_URL,
      room: alice.room,
      identity: alice.identity,
    });
    assert.equal(claims.iss, LIVEKIT_KEY);
    assert.equal(Number(claims.exp) - Number(claims.iat), 3600);
    // Full access: the service created the room (auto_create is off on the SFU).
    assert.ok((await listRooms()).includes(alice.room), "room created by the service");

    // Same Matrix room through the legacy endpoint: the slot is m.call#ROOM, same LiveKit room.
    const b = await service.post(
      "/sfu/get",
      legacyBody(bob, { roomId: alice.roomId, openId: await bob.openIdToken() }),
    );
    assert.equal(b.status, 200, JSON.stringify(b.json));
    checkTokenAnswer(b.json, { url: LIVEKIT_WS_URL, room: alice.room, identity: bobIdentity });

    participants.push(await Participant.join(a.json.jwt as string, { name: "exchange-alice" }));
    participants.push(await Participant.join(b.json.jwt as string, { name: "exchange-bob" }));
    await waitFor(
      async () =>
        JSON.stringify(await participantIdentities(alice.room)) ===
          JSON.stringify([alice.identity, bobIdentity].sort()),
      { what: "both identities in ListParticipants", timeoutMs: 10_000 },
    );
    assert.deepEqual(await participantIdentities(alice.room), [alice.identity, bobIdentity].sort());

    for (const p of participants) await p.leave();
  } finally {
    for (const p of participants) await p.dispose();
    await service.stop();
  }
});

Deno.test("token exchange: a forged OpenID token is refused after the real userinfo lookup", async () => {
  const service = await Service.start({ name: "forged" });
  try {
    const call = await newCall("mallory");
    const openId = { ...(await call.user.openIdToken()), access_token: "forged-token" };
    const res = await service.post(
      "/get_token",
      getTokenBody(call.user, { roomId: call.roomId, openId, memberId: call.memberId }),
    );
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, {
      errcode: "M_UNAUTHORIZED",
      error: "The request could not be authorised.",
    });
    assert.equal((await listRooms()).includes(call.room), false, "no room for a refused request");
  } finally {
    await service.stop();
  }
});
