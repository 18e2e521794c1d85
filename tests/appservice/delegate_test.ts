/**
 * `delegate_delayed_leave`, ping and transactions of app-service mode (app-service.md §5.3,
 * §5.4), against a fake Synapse over HTTP.
 */
import assert from "node:assert/strict";
import { asHarness, PATHS, SFU_URL } from "./_harness.ts";
import { memberIdentity, roomAlias } from "../../lib/livekit/names.ts";
import { userId } from "../../lib/ids.ts";
import { ApiError } from "../../lib/http/errors.ts";

const ALICE = "@alice:hs.test";
const ROOM = "!room:hs.test";

function body(extra: Record<string, unknown> = {}) {
  return {
    url: SFU_URL,
    room_id: ROOM,
    slot_id: "m.call#ROOM",
    member_id: "member-1",
    delay_id: "syd_abc",
    ...extra,
  };
}

Deno.test("app-service delegation: validation order and the look-up as the user (§5.3)", async () => {
  const h = asHarness();
  try {
    for (const field of ["url", "room_id", "slot_id", "member_id", "delay_id"]) {
      const res = await h.send(PATHS.delegate, body({ [field]: "" }));
      assert.equal(res.status, 400, field);
      assert.equal(res.json.error, `The request body is missing \`${field}\``);
    }
    const noUser = await h.send(PATHS.delegate, body(), { user: null });
    assert.equal(noUser.status, 401);
    const wrongUrl = await h.send(PATHS.delegate, body({ url: "wss://elsewhere" }));
    assert.equal(wrongUrl.status, 400);
    assert.equal(wrongUrl.json.errcode, "M_INVALID_PARAM");
    assert.equal(h.hs.count("delayed_events"), 0);

    const unknown = await h.send(PATHS.delegate, body());
    assert.equal(unknown.text, '{"errcode":"M_INVALID_PARAM","error":"Unknown delay_id"}\n');
    const lookup = h.hs.calls.find((c) => c.path.includes("delayed_events"))!;
    assert.equal(lookup.method, "GET");
    assert.equal(lookup.path, "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_abc");
    assert.equal(lookup.query.get("user_id"), ALICE);
    assert.equal(lookup.authorization, `Bearer ${h.hs.asToken}`);
    // Someone else's event, and an event of another room: the same answer.
    h.hs.delayedEvents.set("syd_abc", { roomId: ROOM, delayMs: 10_000, owner: "@bob:hs.test" });
    const foreign = await h.send(PATHS.delegate, body());
    assert.equal(foreign.text, unknown.text);
    h.hs.delayedEvents.set("syd_abc", { roomId: "!other:hs.test", delayMs: 10_000, owner: ALICE });
    const otherRoom = await h.send(PATHS.delegate, body());
    assert.equal(otherRoom.text, unknown.text);
    const dot = await h.send(PATHS.delegate, body({ delay_id: ".." }));
    assert.equal(dot.text, unknown.text);
    assert.equal(h.app.recorded.jobs.length, 0);
  } finally {
    await h.close();
  }
});

Deno.test("app-service delegation: registers a job acting as the user (§5.3 step 4)", async () => {
  const h = asHarness();
  try {
    h.hs.delayedEvents.set("syd_abc", { roomId: ROOM, delayMs: 12_000, owner: ALICE });
    for (const path of [PATHS.delegate, PATHS.delegateUnstable]) {
      const res = await h.send(path, body());
      assert.equal(res.status, 200, res.text);
      assert.equal(res.text, "{}\n");
    }
    const job = h.app.recorded.jobs[0]!;
    assert.equal(job.serverName, "hs.test");
    assert.equal(job.delayId.reveal(), "syd_abc");
    assert.equal(job.delayTimeoutMs, 12_000);
    assert.equal(job.room, roomAlias(ROOM, "m.call#ROOM"));
    assert.equal(job.identity, memberIdentity(userId(ALICE), "member-1"));
    assert.equal(job.userId, ALICE);
    assert.equal(job.appServiceUser, ALICE);
    // No room creation and no token: delegation only.
    assert.equal(h.app.recorded.rooms.length, 0);
  } finally {
    await h.close();
  }
});

Deno.test("app-service delegation: homeserver failures are 503; registration errors pass through", async () => {
  const h = asHarness({}, {
    registerError: new ApiError(400, "M_BAD_JSON", "Too many delegated delayed events"),
  });
  try {
    h.hs.delayedEvents.set("syd_abc", { roomId: ROOM, delayMs: 10_000, owner: ALICE });
    const caps = await h.send(PATHS.delegate, body());
    assert.equal(caps.status, 400);
    assert.equal(caps.json.error, "Too many delegated delayed events");
    await h.hs.close();
    const down = await h.send(PATHS.delegate, body());
    assert.equal(down.status, 503);
    assert.equal(down.json.errcode, "M_UNKNOWN");
  } finally {
    await h.close();
  }
});

Deno.test("app-service: ping and transactions (§5.4)", async () => {
  const h = asHarness();
  try {
    const ping = await h.send(PATHS.ping, { transaction_id: null }, { user: null });
    assert.equal(ping.status, 200);
    assert.equal(ping.text, "{}\n");
    const unauth = await h.send(PATHS.ping, {}, { token: "nope", user: null });
    assert.equal(unauth.status, 401);
    const txn = {
      events: [
        {
          type: "m.room.member",
          room_id: ROOM,
          sender: "@bob:hs.test",
          state_key: "@bob:hs.test",
          content: { membership: "leave" },
        },
        { type: "m.room.message", room_id: ROOM, sender: ALICE, content: { body: "hi" } },
        { type: 5 },
      ],
    };
    const path = "/_matrix/app/v1/transactions/txn%201";
    const post = await h.send(path, txn, { user: null });
    assert.equal(post.status, 405);
    assert.equal(post.res.headers.get("allow"), "PUT, OPTIONS");
    const first = await h.send(path, txn, { method: "PUT", user: null });
    assert.equal(first.status, 200);
    assert.equal(first.text, "{}\n");
    assert.equal(h.events.length, 1);
    assert.deepEqual(
      h.events[0]!.map((e) => [e.type, e.roomId, e.stateKey, e.membership]),
      [
        ["m.room.member", ROOM, "@bob:hs.test", "leave"],
        ["m.room.message", ROOM, undefined, undefined],
      ],
    );
    const again = await h.send(path, txn, { method: "PUT", user: null });
    assert.equal(again.status, 200);
    assert.equal(h.events.length, 1, "a repeated transaction is not processed again");
    const wrongToken = await h.send("/_matrix/app/v1/transactions/2", txn, {
      method: "PUT",
      user: null,
      token: null,
    });
    assert.equal(wrongToken.status, 401);
    assert.equal(h.app.metrics.transactions.get({ result: "duplicate" }), 1);
    assert.equal(h.app.metrics.transactions.get({ result: "events" }), 2);
  } finally {
    await h.close();
  }
});
