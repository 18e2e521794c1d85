/**
 * Scenario 2 (real-stack.md §10 #3; tokens-and-rooms.md §5): with the Synapse server name not in
 * `LIVEKIT_FULL_ACCESS_HOMESERVERS`, the user still gets a token but the SFU refuses the join
 * because nobody created the room (`auto_create: false`); once a full-access request created it,
 * the very same restricted token joins. Restricted users may not delegate (http-api.md §7, §8).
 *
 * @module
 */
import assert from "node:assert/strict";
import { LIVEKIT_WS_URL } from "../lib/env.ts";
import { checkTokenAnswer, joinMatrixCall, newCall } from "../lib/call.ts";
import { listRooms, participantIdentities } from "../lib/livekit.ts";
import { Participant } from "../lib/participant.ts";
import { getTokenBody } from "../lib/requests.ts";
import { Service } from "../lib/service.ts";

const RESTRICTED_BIND = "127.0.0.1:8081";

Deno.test("full access vs restricted on the real SFU", async () => {
  // The restricted instance lists some other homeserver only; the full-access one lists ours.
  const restricted = await Service.start({
    name: "restricted",
    bind: RESTRICTED_BIND,
    fullAccess: "other.example.org",
  });
  const full = await Service.start({ name: "full-access" });
  const participants: Participant[] = [];
  try {
    const call = await newCall("carol");
    const body = getTokenBody(call.user, {
      roomId: call.roomId,
      openId: await call.user.openIdToken(),
      memberId: call.memberId,
    });

    const res = await restricted.post("/get_token", body);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    checkTokenAnswer(res.json, { url: LIVEKIT_WS_URL, room: call.room, identity: call.identity });
    assert.equal((await listRooms()).includes(call.room), false, "restricted users create no room");

    const refused = Participant.start(res.json.jwt as string, { name: "restricted-refused" });
    try {
      assert.match(await refused.failed(), /^ERROR /);
    } finally {
      await refused.dispose();
    }

    // Delegation is full-access only: 400 on the token endpoint, 403 on /delegate_delayed_leave.
    const delayId = await joinMatrixCall(call, 10_000);
    const delay = { delayId, delayTimeoutMs: 10_000 };
    const withDelay = await restricted.post(
      "/get_token",
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
        delay,
      }),
    );
    assert.equal(withDelay.status, 400);
    assert.deepEqual(withDelay.json, {
      errcode: "M_BAD_JSON",
      error: "Delegation of delayed events is only supported for full access users",
    });
    const delegate = await restricted.post(
      "/delegate_delayed_leave",
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
        delay,
      }),
    );
    assert.equal(delegate.status, 403);
    assert.equal(delegate.json.errcode, "M_FORBIDDEN");

    // A full-access request for the same Matrix room creates the LiveKit room...
    const created = await full.post("/get_token", {
      ...body,
      openid_token: await call.user.openIdToken(),
      member: { ...(body.member as object), id: `${call.memberId}-full` },
    });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    assert.ok((await listRooms()).includes(call.room), "room created by the full-access request");

    // ...and now the earlier restricted token joins.
    participants.push(
      await Participant.join(res.json.jwt as string, { name: "restricted-joined" }),
    );
    assert.deepEqual(await participantIdentities(call.room), [call.identity]);
    for (const p of participants) await p.leave();
  } finally {
    for (const p of participants) await p.dispose();
    await full.stop();
    await restricted.stop();
  }
});
