/**
 * App-service mode on two real, federating Synapses (app-service.md): homeserver A
 * (localhost:8448, SFU A on 7880, service on 8080) and homeserver B (localhost:8449, SFU B on
 * 7980, service on 8081), each forwarding `rtc/livekit` requests to its own service
 * (MSC4512) and answering its `is_joined` questions (MSC4502). Clients are real Matrix users
 * calling their homeserver with their access token; no OpenID token is involved.
 *
 * 1. A local user of A gets a token through Synapse A and joins SFU A (room created by the
 *    service, publishing allowed).
 * 2. A user of B gets, through Synapse B, a token relayed from A (fed_proxy over federation)
 *    and joins SFU A as a subscriber: publishing is refused by the SFU.
 * 3. Refusals: a user not in the room (403), a server not in the room (403), a wrong url (400).
 * 4. `delegate_delayed_leave` through Synapse A with a real delayed leave event: kept alive past
 *    its delay while connected, sent within 5 s of the participant leaving.
 * 5. An old client (standalone `/get_token`, OpenID) and a new client (through Synapse) of the
 *    same room and slot meet in one LiveKit room on SFU A.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LIVEKIT_KEY, LIVEKIT_WS_URL, SERVER_NAME, SERVER_NAME_B } from "../lib/env.ts";
import { h, hashedIdentity, roomAlias } from "../lib/hash.ts";
import { decodeJwt } from "../lib/jwt.ts";
import { listParticipants, listRooms, participantIdentities } from "../lib/livekit.ts";
import { Participant } from "../lib/participant.ts";
import { holdsFor, stopwatch, waitFor } from "../lib/poll.ts";
import { getTokenBody } from "../lib/requests.ts";
import {
  newMemberId,
  newUser,
  RTC,
  sharedRoom,
  startServiceA,
  startServiceB,
  tokenRequest,
} from "../lib/appservice.ts";

Deno.test("app-service 1: a local user's token through Synapse A joins SFU A and may publish", async () => {
  const service = await startServiceA("as-local");
  let participant: Participant | undefined;
  try {
    const alice = await newUser("alice", "a");
    const roomId = await alice.createCallRoom();
    const memberId = newMemberId();
    const res = await alice.rtc(RTC.getToken, tokenRequest(roomId, memberId));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.json), ["jwt"]);
    const { header, payload } = decodeJwt(res.json.jwt as string);
    assert.deepEqual(header, { alg: "HS256", typ: "JWT" });
    const room = roomAlias(roomId);
    const identity = h([alice.userId, memberId]);
    assert.equal(payload.iss, LIVEKIT_KEY);
    assert.equal(payload.sub, identity);
    assert.deepEqual(payload.video, {
      roomJoin: true,
      room,
      roomCreate: false,
      canPublish: true,
      canSubscribe: true,
      canUpdateOwnMetadata: false,
      hidden: false,
    });
    assert.ok((await listRooms()).includes(room), "room created by the service");

    participant = await Participant.join(res.json.jwt as string, { name: "as-local-alice" });
    assert.deepEqual(await participantIdentities(room), [identity]);
    assert.match(await participant.publish(), /^PUBLISHED /);
    // The unstable path works the same way.
    const unstable = await alice.rtc(RTC.getTokenUnstable, tokenRequest(roomId, newMemberId()));
    assert.equal(unstable.status, 200, unstable.text);
    await participant.leave();
  } finally {
    await participant?.dispose();
    await service.stop();
  }
});

Deno.test("app-service 2: a user of B gets a relayed token for SFU A and may only subscribe", async () => {
  const serviceA = await startServiceA("as-remote-a");
  const serviceB = await startServiceB("as-remote-b");
  let participant: Participant | undefined;
  try {
    const alice = await newUser("alice", "a");
    const bob = await newUser("bob", "b");
    const roomId = await sharedRoom(alice, [bob]);
    const memberId = newMemberId();
    const res = await bob.rtc(
      RTC.getToken,
      tokenRequest(roomId, memberId, { server_name: SERVER_NAME }),
    );
    assert.equal(res.status, 200, res.text);
    const { payload } = decodeJwt(res.json.jwt as string);
    const room = roomAlias(roomId);
    const identity = h([bob.userId, memberId]);
    assert.equal(payload.iss, LIVEKIT_KEY, "minted by A's service with SFU A's key");
    assert.equal(payload.sub, identity);
    const video = payload.video as Record<string, unknown>;
    assert.equal(video.room, room);
    assert.equal(video.canPublish, false);
    assert.equal(video.roomCreate, false);
    assert.equal(video.hidden, false);
    // The relay went B → Synapse B → federation → Synapse A → A's service.
    assert.ok(serviceB.logLines("relay_status=200").length > 0, "B relayed it");
    assert.ok(serviceA.logLines(`origin=${SERVER_NAME_B}`).length > 0, "A answered B");

    participant = await Participant.join(res.json.jwt as string, { name: "as-remote-bob" });
    const info = (await listParticipants(room)).find((p) => p.identity === identity) as
      | (Record<string, unknown> & { permission?: Record<string, unknown> })
      | undefined;
    assert.ok(info, "bob is on SFU A");
    assert.equal(info.permission?.canPublish ?? false, false);
    assert.match(await participant.publish(), /^PUBLISH_FAILED /, "the SFU refuses his track");
    await participant.leave();
  } finally {
    await participant?.dispose();
    await serviceB.stop();
    await serviceA.stop();
  }
});

Deno.test("app-service 3: not in the room 403, server not in the room 403, wrong url 400", async () => {
  const service = await startServiceA("as-refusals");
  try {
    const alice = await newUser("alice", "a");
    const carol = await newUser("carol", "a");
    const roomId = await alice.createCallRoom();
    const outsider = await carol.rtc(RTC.getToken, tokenRequest(roomId, newMemberId()));
    assert.equal(outsider.status, 403, outsider.text);
    assert.equal(outsider.json.errcode, "M_FORBIDDEN");
    // B has nobody in this room.
    const remote = await alice.rtc(
      RTC.getToken,
      tokenRequest(roomId, newMemberId(), {
        server_name: SERVER_NAME_B,
        url: "ws://127.0.0.1:7980",
      }),
    );
    assert.equal(remote.status, 403, remote.text);
    assert.equal(remote.json.errcode, "M_FORBIDDEN");
    const wrongUrl = await alice.rtc(
      RTC.getToken,
      tokenRequest(roomId, newMemberId(), { url: "ws://127.0.0.1:9999" }),
    );
    assert.equal(wrongUrl.status, 400, wrongUrl.text);
    assert.equal(wrongUrl.json.errcode, "M_INVALID_PARAM");
    // Nothing was created for any of them.
    assert.equal((await listRooms()).includes(roomAlias(roomId)), false);
  } finally {
    await service.stop();
  }
});

Deno.test("app-service 4: delegate_delayed_leave through Synapse A keeps the leave back, then sends it", async () => {
  const service = await startServiceA("as-delegation");
  let participant: Participant | undefined;
  try {
    const alice = await newUser("alice", "a");
    const roomId = await alice.createCallRoom();
    const memberId = newMemberId();
    await alice.publishMembership(roomId, memberId);
    const T = 10_000;
    const delayId = await alice.scheduleDelayedLeave(roomId, T);
    const token = await alice.rtc(RTC.getToken, tokenRequest(roomId, memberId));
    assert.equal(token.status, 200, token.text);
    participant = await Participant.join(token.json.jwt as string, { name: "as-delegation-alice" });
    const res = await alice.rtc(RTC.delegate, {
      ...tokenRequest(roomId, memberId),
      delay_id: delayId,
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, {});
    const unknown = await alice.rtc(RTC.delegate, {
      ...tokenRequest(roomId, memberId),
      delay_id: "syd_not_a_delay_id",
    });
    assert.equal(unknown.status, 400, unknown.text);
    assert.equal(unknown.json.errcode, "M_INVALID_PARAM");

    // Found by SFU polling (the join happened before the delegation), restarted as the user.
    const start = (await alice.pendingDelayedEvent(delayId))!.running_since;
    await waitFor(
      async () => ((await alice.pendingDelayedEvent(delayId))?.running_since ?? 0) > start,
      {
        what: "a restart by the service",
        timeoutMs: 15_000,
      },
    );
    await holdsFor(async () => (await alice.pendingDelayedEvent(delayId)) !== undefined, {
      what: "delayed leave still pending past T",
      timeoutMs: T + 5_000,
    });
    assert.equal(await alice.hasLeft(roomId), false);
    const elapsed = stopwatch();
    await participant.leave();
    await waitFor(() => alice.hasLeft(roomId), {
      what: "the leave in the room state",
      timeoutMs: 5_000,
    });
    console.log(`leave sent ${elapsed()} ms after the participant left`);
    assert.ok(service.logLines("Delayed leave event sent").length > 0);
  } finally {
    await participant?.dispose();
    await service.stop();
  }
});

Deno.test("app-service 5: an old and a new client of one room and slot share the LiveKit room", async () => {
  const service = await startServiceA("as-mixed");
  const participants: Participant[] = [];
  try {
    const oldClient = await newUser("old", "a");
    const newClient = await newUser("new", "a");
    const roomId = await sharedRoom(oldClient, [newClient]);
    const room = roomAlias(roomId);
    const oldMember = `${oldClient.userId}:${oldClient.deviceId}`;
    const standalone = await service.post(
      "/get_token",
      getTokenBody(oldClient, {
        roomId,
        openId: await oldClient.openIdToken(),
        memberId: oldMember,
      }),
    );
    assert.equal(standalone.status, 200, JSON.stringify(standalone.json));
    assert.equal(standalone.json.url, LIVEKIT_WS_URL);
    const newMember = newMemberId();
    const viaHs = await newClient.rtc(RTC.getToken, tokenRequest(roomId, newMember));
    assert.equal(viaHs.status, 200, viaHs.text);
    const oldIdentity = hashedIdentity({
      userId: oldClient.userId,
      deviceId: oldClient.deviceId,
      memberId: oldMember,
    });
    const newIdentity = h([newClient.userId, newMember]);
    for (const [jwt, name] of [[standalone.json.jwt, "old"], [viaHs.json.jwt, "new"]] as const) {
      assert.equal((decodeJwt(jwt as string).payload.video as Record<string, unknown>).room, room);
      participants.push(await Participant.join(jwt as string, { name: `as-mixed-${name}` }));
    }
    assert.deepEqual(await participantIdentities(room), [oldIdentity, newIdentity].sort());
    for (const p of participants) await p.leave();
  } finally {
    for (const p of participants) await p.dispose();
    await service.stop();
  }
});
