/**
 * Stack self-check (real-stack.md §10 scenario 1, without our service): proves that Synapse
 * issues OpenID tokens verifiable over federation TLS with the test CA and runs MSC4140 delayed
 * events, and that a real WebRTC participant joins the SFU inside the namespace with a JWT the
 * harness minted itself (tokens-and-rooms.md §4), producing signed webhooks. When this file
 * fails, the service scenarios cannot tell anything.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LIVEKIT_KEY, LIVEKIT_SECRET, SERVER_NAME, stackPaths, uniqueSuffix } from "../lib/env.ts";
import { hashedIdentity, roomAlias } from "../lib/hash.ts";
import { bodySha256, decodeJwt, joinToken, verifyHs256 } from "../lib/jwt.ts";
import { createRoom, deleteRoom, participantIdentities } from "../lib/livekit.ts";
import { Participant } from "../lib/participant.ts";
import { waitFor } from "../lib/poll.ts";
import { MatrixUser } from "../lib/synapse.ts";
import { findWebhooks } from "../lib/webhook_sink.ts";

Deno.test("stack: Synapse OpenID userinfo over TLS with the test CA", async () => {
  const user = await MatrixUser.register(`stack-${uniqueSuffix()}`);
  const openId = await user.openIdToken();
  assert.equal(openId.matrix_server_name, SERVER_NAME);
  assert.equal(openId.token_type, "Bearer");
  const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(stackPaths().caFile)] });
  try {
    const url = `https://localhost:8448/_matrix/federation/v1/openid/userinfo?access_token=` +
      encodeURIComponent(openId.access_token);
    const res = await fetch(url, { client });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { sub: user.userId });
  } finally {
    client.close();
  }
});

Deno.test("stack: Synapse delayed events restart and send without authentication", async () => {
  const user = await MatrixUser.register(`stack-${uniqueSuffix()}`);
  assert.ok("org.matrix.msc4140.delayed_events" in await user.capabilities(), "MSC4140 enabled");
  const roomId = await user.createCallRoom();
  await user.publishMembership(roomId, "m1");
  const delayId = await user.scheduleDelayedLeave(roomId, 60_000);
  const before = await user.pendingDelayedEvent(delayId);
  assert.ok(before, "delayed event listed as pending");
  const base = "http://127.0.0.1:8008/_matrix/client/unstable/org.matrix.msc4140/delayed_events/";
  const restart = await fetch(`${base}${encodeURIComponent(delayId)}/restart`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  await restart.body?.cancel();
  assert.equal(restart.status, 200);
  assert.equal(await user.hasLeft(roomId), false);
  const send = await fetch(`${base}${encodeURIComponent(delayId)}/send`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  await send.body?.cancel();
  assert.equal(send.status, 200);
  await waitFor(() => user.hasLeft(roomId), {
    what: "leave event in room state",
    timeoutMs: 10_000,
  });
  assert.equal(await user.pendingDelayedEvent(delayId), undefined);
});

Deno.test("stack: a real participant joins the SFU and produces signed webhooks", async () => {
  const room = roomAlias(`!stack-${uniqueSuffix()}:${SERVER_NAME}`);
  const identity = hashedIdentity({
    userId: "@stack:localhost:8448",
    deviceId: "D",
    memberId: "m",
  });
  let participant: Participant | undefined;
  try {
    // auto_create is off: without the room the join is refused.
    const refused = Participant.start(
      joinToken({ key: LIVEKIT_KEY, secret: LIVEKIT_SECRET, room, identity }),
      { name: "stack-refused" },
    );
    try {
      assert.match(await refused.failed(), /^ERROR /);
    } finally {
      await refused.dispose();
    }

    await createRoom(room);
    const token = joinToken({ key: LIVEKIT_KEY, secret: LIVEKIT_SECRET, room, identity });
    assert.equal(decodeJwt(token).payload.sub, identity);
    participant = await Participant.join(token, { name: "stack" });
    assert.deepEqual(await participantIdentities(room), [identity]);

    const joined = await waitFor(
      async () => (await findWebhooks("participant_joined", identity))[0],
      {
        what: "participant_joined webhook",
        timeoutMs: 10_000,
      },
    );
    assert.ok(
      verifyHs256(joined.authorization, LIVEKIT_SECRET),
      "webhook JWT signed with the secret",
    );
    const claims = decodeJwt(joined.authorization).payload;
    assert.equal(claims.iss, LIVEKIT_KEY);
    assert.equal(claims.sha256, bodySha256(joined.body));

    await participant.leave();
    const left = await waitFor(async () => (await findWebhooks("participant_left", identity))[0], {
      what: "participant_left webhook",
      timeoutMs: 10_000,
    });
    const info = left.event.participant as { disconnectReason?: string };
    assert.equal(info.disconnectReason, "CLIENT_INITIATED");
    await waitFor(async () => (await participantIdentities(room)).length === 0, {
      what: "participant gone from the room",
      timeoutMs: 10_000,
    });
  } finally {
    await participant?.dispose();
    await deleteRoom(room).catch(() => {});
  }
});

Deno.test("stack: a participant whose media never connects is reported as aborted", async () => {
  const room = roomAlias(`!stack-${uniqueSuffix()}:${SERVER_NAME}`);
  const identity = hashedIdentity({
    userId: "@stack:localhost:8448",
    deviceId: "N",
    memberId: "m",
  });
  await createRoom(room);
  const participant = Participant.start(
    joinToken({ key: LIVEKIT_KEY, secret: LIVEKIT_SECRET, room, identity }),
    { name: "stack-no-media", mode: "no-media", connectTimeoutSeconds: 5 },
  );
  try {
    assert.match(await participant.failed(), /^ERROR /);
    const aborted = await waitFor(
      async () => (await findWebhooks("participant_connection_aborted", identity))[0],
      { what: "participant_connection_aborted webhook", timeoutMs: 45_000, intervalMs: 500 },
    );
    assert.equal(aborted.event.event, "participant_connection_aborted");
    assert.equal((await findWebhooks("participant_joined", identity)).length, 0);
  } finally {
    await participant.dispose();
    await deleteRoom(room).catch(() => {});
  }
});
