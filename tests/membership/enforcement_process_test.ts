/**
 * Membership enforcement as a process (app-service.md §8, MSC4195 "Kicking users from the SFU on
 * room leave/ban"): pushed leaves, kicks and bans; the same by the sweep alone; the re-check
 * when the SFU reports a join; waiting participants; homeserver failures; replayed
 * transactions; a restart with Redis.
 */
import assert from "node:assert/strict";
import { TestRedis } from "../fakes/redis.ts";
import { freePort } from "../support/service.ts";
import { until } from "../support/poll.ts";
import { memberEvent, ROOM, startEnforcement } from "./_process.ts";

const ALICE = "@alice:hs.test";
const BOB = "@bob:hs.test";
const ADMIN = "@admin:hs.test";
const REMOTE = "@rita:remote.test";

function isJoinedCalls(e: { hs: { calls: { path: string }[] } }): number {
  return e.hs.calls.filter((c) => c.path.endsWith("/is_joined")).length;
}

Deno.test("membership: leave, kick and ban pushed by the homeserver remove the user's participants", async () => {
  const e = await startEnforcement();
  try {
    for (const u of [ALICE, BOB, ADMIN, REMOTE]) e.hs.join(ROOM, u);
    const alice = await e.issue(ALICE, "a1");
    const alice2 = await e.issue(ALICE, "a2");
    const bob = await e.issue(BOB, "b1");
    const admin = await e.issue(ADMIN, "x1");
    const beforeJoins = isJoinedCalls(e);
    for (const h of [alice, alice2, bob, admin]) await e.join(h);
    // Alice's two joins share one question (concurrent identical is_joined are coalesced).
    await until("the join checks", () => isJoinedCalls(e) >= beforeJoins + 3);

    // Leave: both of Alice's identities go, nobody else.
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    await e.push("t-leave", [memberEvent(ALICE, "leave")]);
    await until("alice's two identities removed", () => e.sfu.removed.length === 2);
    assert.deepEqual(e.sfu.removed.sort(), [alice.key, alice2.key].sort());

    // Kick (leave sent by the admin) of Bob.
    e.hs.joined.delete(`${ROOM}|${BOB}`);
    await e.push("t-kick", [memberEvent(BOB, "leave", { sender: ADMIN, reason: "bye" })]);
    await until("bob removed", () => e.sfu.removed.includes(bob.key));

    // Ban of a remote user whose token was minted here through the S-S endpoint.
    const { asClient } = await import("../fakes/synapse_as.ts");
    const res = await asClient(e.svc.url, {
      path: "/_matrix/federation/v1/rtc/livekit/get_token",
      hsToken: e.hs.hsToken,
      origin: "remote.test",
      body: {
        user_id: REMOTE,
        url: e.sfu.wsUrl,
        room_id: ROOM,
        slot_id: "m.call#ROOM",
        member_id: "r1",
      },
    });
    assert.equal(res.status, 200, res.text);
    const { memberIdentity } = await import("../../lib/livekit/names.ts");
    const { userId } = await import("../../lib/ids.ts");
    const rita = {
      user: REMOTE,
      room: alice.room,
      identity: memberIdentity(userId(REMOTE), "r1"),
      key: "",
    };
    rita.key = `${rita.room}/${rita.identity}`;
    await e.join(rita);
    e.hs.joined.delete(`${ROOM}|${REMOTE}`);
    await e.push("t-ban", [memberEvent(REMOTE, "ban", { sender: ADMIN })]);
    await until("banned remote user removed", () => e.sfu.removed.includes(rita.key)).catch(
      (err) => {
        console.log(e.svc.logs());
        throw err;
      },
    );

    // The admin stays; no room was deleted (the homeserver is still in the room).
    assert.equal(e.sfu.removed.includes(admin.key), false);
    assert.deepEqual(e.sfu.deleted, []);
    const removal = e.sfu.calls.find((c) => c.method === "RemoveParticipant")!;
    assert.deepEqual(removal.grant, { roomAdmin: true, room: alice.room });
    await e.svc.waitForLog(/Removed a participant.*reason=push/);
  } finally {
    await e.close();
  }
});

Deno.test("membership: a pushed leave that is stale (user joined again) removes nobody", async () => {
  const e = await startEnforcement();
  try {
    e.hs.join(ROOM, ALICE);
    const alice = await e.issue(ALICE, "a1");
    await e.join(alice);
    const before = isJoinedCalls(e);
    await e.push("t-stale", [memberEvent(ALICE, "leave")]);
    // The confirmation is asked fresh (not from the cache of the token request).
    await until("confirmation and server check", () => isJoinedCalls(e) > before + 1);
    await e.push("t-after", [memberEvent(BOB, "leave")]);
    assert.deepEqual(e.sfu.removed, []);
  } finally {
    await e.close();
  }
});

Deno.test("membership: the sweep alone removes left, kicked and banned users; last local user gone → DeleteRoom", async () => {
  const e = await startEnforcement({ LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS: "1" });
  try {
    for (const u of [ALICE, BOB, ADMIN]) e.hs.join(ROOM, u);
    const alice = await e.issue(ALICE, "a1");
    const bob = await e.issue(BOB, "b1");
    const admin = await e.issue(ADMIN, "x1");
    for (const h of [alice, bob, admin]) await e.join(h);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    e.hs.joined.delete(`${ROOM}|${BOB}`);
    await until("two removals by the sweep", () => e.sfu.removed.length === 2);
    assert.deepEqual(e.sfu.removed.sort(), [alice.key, bob.key].sort());
    await e.svc.waitForLog(/Removed a participant.*reason=sweep/);

    // The homeserver leaves the room altogether: the LiveKit room is deleted.
    e.hs.joined.delete(`${ROOM}|${ADMIN}`);
    e.hs.joined.delete(`${ROOM}|server:${e.hs.serverName}`);
    await until("DeleteRoom by the sweep", () => e.sfu.deleted.length === 1);
    assert.deepEqual(e.sfu.deleted, [admin.room]);
    const call = e.sfu.calls.find((c) => c.method === "DeleteRoom")!;
    assert.deepEqual(call.grant, { roomCreate: true });
  } finally {
    await e.close();
  }
});

Deno.test("membership: the last local user's pushed leave deletes the LiveKit room", async () => {
  const e = await startEnforcement();
  try {
    e.hs.join(ROOM, ALICE);
    const alice = await e.issue(ALICE, "a1");
    await e.join(alice);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    e.hs.joined.delete(`${ROOM}|server:${e.hs.serverName}`);
    await e.push("t-last", [memberEvent(ALICE, "leave")]);
    await until("DeleteRoom", () => e.sfu.deleted.length === 1);
    assert.deepEqual(e.sfu.deleted, [alice.room]);
  } finally {
    await e.close();
  }
});

Deno.test("membership: a join with an old token is re-checked and removed; waiting holders are untouched", async () => {
  const metricsPort = freePort();
  const e = await startEnforcement({
    LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS: "1",
    LIVEKIT_METRICS_BIND: `127.0.0.1:${metricsPort}`,
  });
  const sweepChecks = async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return [...text.matchAll(/^lk_jwt_membership_checks_total\{source="sweep",[^}]*\} (\d+)$/gm)]
      .reduce((n, m) => n + Number(m[1]), 0);
  };
  try {
    for (const u of [ALICE, BOB, ADMIN]) e.hs.join(ROOM, u);
    const alice = await e.issue(ALICE, "a1");
    const bob = await e.issue(BOB, "b1");
    // The admin stays connected, so every sweep asks the homeserver something.
    await e.join(await e.issue(ADMIN, "x1"));
    await e.join(alice);
    // Alice leaves the call, then is kicked from the room; she comes back with her token.
    await e.leave(alice);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    // Bob got a token but never connected, and is kicked too: nothing to remove, ever.
    e.hs.joined.delete(`${ROOM}|${BOB}`);
    await e.push("t-bob", [memberEvent(BOB, "leave", { sender: ALICE })]);
    await e.join(alice);
    await until("alice removed on join", () => e.sfu.removed.includes(alice.key));
    await e.svc.waitForLog(/Removed a participant.*reason=join/);
    // Two sweeps (server and admin checks each) later Bob is still not touched.
    const sweeps = await sweepChecks();
    await until("two more sweeps", async () => (await sweepChecks()) >= sweeps + 4, 10_000);
    assert.equal(
      e.sfu.calls.some((c) => c.method === "RemoveParticipant" && c.identity === bob.identity),
      false,
    );
    assert.deepEqual(e.sfu.removed, [alice.key]);
  } finally {
    await e.close();
  }
});

Deno.test("membership: homeserver errors remove nobody (fail open), and are counted", async () => {
  const metricsPort = freePort();
  const e = await startEnforcement({
    LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS: "1",
    LIVEKIT_METRICS_BIND: `127.0.0.1:${metricsPort}`,
  });
  try {
    e.hs.join(ROOM, ALICE);
    const alice = await e.issue(ALICE, "a1");
    await e.join(alice);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    e.hs.settings.scope = false; // every is_joined now fails (403)
    const before = isJoinedCalls(e);
    await e.push("t-err", [memberEvent(ALICE, "leave")]);
    await until("push and sweep checks attempted", () => isJoinedCalls(e) >= before + 3);
    await e.svc.waitForLog(/Membership check failed; nobody removed/);
    assert.deepEqual(e.sfu.removed, []);
    assert.deepEqual(e.sfu.deleted, []);
    // Once the homeserver answers again, the next sweep removes her.
    e.hs.settings.scope = true;
    await until("removed after recovery", () => e.sfu.removed.includes(alice.key));
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const value = (series: string) =>
      Number(new RegExp(`^${series.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1]);
    assert.ok(value('lk_jwt_membership_failures_total{op="is_joined"}') >= 2, text);
    assert.ok(value('lk_jwt_membership_checks_total{source="push",result="error"}') >= 1, text);
    assert.equal(value('lk_jwt_membership_removals_total{reason="sweep"}'), 1, text);
    assert.equal(value('lk_jwt_membership_tracked{state="waiting"}'), 1, text);
  } finally {
    await e.close();
  }
});

Deno.test("membership: a replayed transaction ID is processed once", async () => {
  const e = await startEnforcement();
  try {
    e.hs.join(ROOM, ALICE);
    e.hs.join(ROOM, BOB);
    const alice = await e.issue(ALICE, "a1");
    const bob = await e.issue(BOB, "b1");
    await e.join(alice);
    await e.join(bob);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    await e.push("t-1", [memberEvent(ALICE, "leave")]);
    await until("alice removed", () => e.sfu.removed.length === 1);
    // Alice is back in the room and the call; then the same transaction arrives again.
    e.hs.join(ROOM, ALICE);
    const beforeJoin = isJoinedCalls(e);
    await e.join(alice);
    await until("the join check", () => isJoinedCalls(e) > beforeJoin);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    await e.push("t-1", [memberEvent(ALICE, "leave")]);
    // A later transaction is processed; the replay was not.
    e.hs.joined.delete(`${ROOM}|${BOB}`);
    await e.push("t-2", [memberEvent(BOB, "leave")]);
    await until("bob removed", () => e.sfu.removed.includes(bob.key));
    assert.deepEqual(e.sfu.removed, [alice.key, bob.key]);
  } finally {
    await e.close();
  }
});

Deno.test("membership: after a restart with Redis the tracked participants are still enforced", async () => {
  const redis = await TestRedis.start();
  const e = await startEnforcement({ LIVEKIT_REDIS_URL: redis.url });
  try {
    e.hs.join(ROOM, ALICE);
    const alice = await e.issue(ALICE, "a1");
    await e.join(alice);
    let stored = new Map<string, string>();
    await until("the connected state reaches Redis", async () => {
      stored = await redis.hgetall("lk-jwt:participants");
      return [...stored.values()].some((v) => v.includes('"connected"'));
    }, 10_000);
    assert.equal(stored.size, 1);
    const [field, value] = [...stored][0]!;
    assert.equal(field, JSON.stringify([alice.room, alice.identity]));
    assert.deepEqual(Object.keys(JSON.parse(value)), ["roomId", "user", "state", "expiresAt"]);
    assert.equal(JSON.parse(value).state, "connected");

    await e.restart();
    await e.svc.waitForLog(/Tracked participants loaded from Redis.* when=start added=1/);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    await e.push("t-restart", [memberEvent(ALICE, "ban", { sender: ADMIN })]);
    await until("removed by the restarted service", () => e.sfu.removed.includes(alice.key));
  } finally {
    await e.close();
    await redis.dispose();
  }
});

Deno.test("membership: the delegation job of a removed participant sends its leave event", async () => {
  const e = await startEnforcement();
  try {
    e.hs.join(ROOM, ALICE);
    const alice = await e.issue(ALICE, "a1");
    e.hs.delayedEvents.set("syd_kick", { roomId: ROOM, delayMs: 30_000, owner: ALICE });
    const { asClient } = await import("../fakes/synapse_as.ts");
    const delegate = await asClient(e.svc.url, {
      path: "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave",
      hsToken: e.hs.hsToken,
      user: ALICE,
      body: {
        url: e.sfu.wsUrl,
        room_id: ROOM,
        slot_id: "m.call#ROOM",
        member_id: "a1",
        delay_id: "syd_kick",
      },
    });
    assert.equal(delegate.status, 200, delegate.text);
    await e.join(alice);
    await until("the job restarts", () => e.hs.delayed.count("syd_kick", "restart") >= 1);
    e.hs.joined.delete(`${ROOM}|${ALICE}`);
    await e.push("t-kick", [memberEvent(ALICE, "leave", { sender: ADMIN })]);
    await until("removed", () => e.sfu.removed.includes(alice.key));
    // What LiveKit sends after RemoveParticipant.
    await e.leave(alice, "PARTICIPANT_REMOVED");
    await until("the leave event sent", () => e.hs.delayed.count("syd_kick", "send") === 1);
  } finally {
    await e.close();
  }
});
