/**
 * The enforcement engine with stand-ins and a manual clock (app-service.md §8): SFU actions
 * retried with bounded jittered backoff, "not found" as success, waiting entries left alone
 * and forgotten once their token expired, the bound on tracked entries, the Redis codec.
 */
import assert from "node:assert/strict";
import { MembershipEnforcer, type SfuActions } from "../../lib/membership/enforcer.ts";
import { ACTION_ATTEMPTS } from "../../lib/membership/actions.ts";
import { TrackedParticipants } from "../../lib/membership/tracked.ts";
import {
  decodeParticipant,
  encodeParticipant,
  ParticipantStore,
} from "../../lib/membership/store.ts";
import { encodeField } from "../../lib/store/codec.ts";
import type { LiveKitIdentity, LiveKitRoomAlias } from "../../lib/ids.ts";
import { userId } from "../../lib/ids.ts";
import { silentLogger } from "../../lib/log.ts";
import { ServiceMetrics } from "../../lib/metrics/metrics.ts";
import { ManualClock } from "../support/manual_clock.ts";

const ROOM_ID = "!r:hs.test";
const LK = "lk-room" as LiveKitRoomAlias;
const ALICE = userId("@alice:hs.test");

function setup(sfu: Partial<SfuActions> = {}) {
  const clock = new ManualClock();
  const joined = new Set<string>([`${ROOM_ID}|server`, `${ROOM_ID}|${ALICE}`]);
  const removed: string[] = [];
  const metrics = new ServiceMetrics();
  const enforcer = new MembershipEnforcer({
    serverName: "hs.test",
    homeserver: {
      isJoined: (roomId, who) =>
        Promise.resolve(joined.has(`${roomId}|${"mxid" in who ? who.mxid : "server"}`)),
    },
    sfu: {
      removeParticipant: sfu.removeParticipant ?? ((room, identity) => {
        removed.push(`${room}/${identity}`);
        return Promise.resolve(true);
      }),
      deleteRoom: sfu.deleteRoom ?? (() => Promise.resolve(true)),
    },
    clock,
    log: silentLogger,
    metrics,
    intervalMs: 0,
    tokenValidityMs: 60_000,
  });
  const issue = (identity: string) =>
    enforcer.tokenIssued({
      roomId: ROOM_ID,
      user: ALICE,
      room: LK,
      identity: identity as LiveKitIdentity,
      local: true,
    });
  return { clock, joined, removed, enforcer, issue, metrics };
}

Deno.test("enforcer: RemoveParticipant retried with growing jittered delays, then given up", async () => {
  let attempts = 0;
  const t = setup({
    removeParticipant: () => {
      attempts++;
      return Promise.reject(new Error("SFU unavailable"));
    },
  });
  t.issue("i1");
  t.enforcer.webhook({ event: "participant_joined", room: LK, identity: "i1" });
  await t.enforcer.idle();
  t.joined.delete(`${ROOM_ID}|${ALICE}`);
  const sweeping = t.enforcer.sweep();
  await t.clock.flush();
  assert.equal(attempts, 1);
  // 500 ms, 1 s, 2 s, 4 s (jitter factor 1.0 with the clock's random 0.5).
  for (const step of [500, 1_000, 2_000, 4_000]) {
    await t.clock.flush();
    const before: number = attempts;
    await t.clock.advance(step);
    await t.clock.flush();
    assert.equal(attempts, before + 1, `attempt after ${step} ms`);
  }
  await sweeping;
  assert.equal(attempts, ACTION_ATTEMPTS);
  assert.match(t.metrics.render(), /lk_jwt_membership_failures_total\{op="remove_participant"\} 1/);
});

Deno.test("enforcer: not found counts as done; the entry waits for a rejoin until its token expires", async () => {
  const t = setup({ removeParticipant: () => Promise.resolve(false) });
  t.issue("i1");
  t.enforcer.webhook({ event: "participant_joined", room: LK, identity: "i1" });
  await t.enforcer.idle();
  t.joined.delete(`${ROOM_ID}|${ALICE}`);
  await t.enforcer.sweep();
  await t.enforcer.idle();
  assert.equal(t.enforcer.tracked.get(LK, "i1")?.state, "waiting");
  await t.clock.advance(61_000);
  await t.enforcer.sweep();
  assert.equal(t.enforcer.tracked.size, 0, "forgotten after expiry");
});

Deno.test("enforcer: waiting participants are never removed, not even by a pushed ban", async () => {
  const t = setup();
  t.issue("i1");
  t.joined.delete(`${ROOM_ID}|${ALICE}`);
  await t.enforcer.handleEvents([{
    type: "m.room.member",
    roomId: ROOM_ID,
    sender: "@admin:hs.test",
    stateKey: ALICE,
    membership: "ban",
    raw: {},
  }]);
  await t.enforcer.sweep();
  await t.enforcer.idle();
  assert.deepEqual(t.removed, []);
  assert.equal(t.enforcer.tracked.get(LK, "i1")?.state, "waiting");
});

Deno.test("enforcer: a left participant whose token expired is forgotten at once", async () => {
  const t = setup();
  t.issue("i1");
  t.enforcer.webhook({ event: "participant_joined", room: LK, identity: "i1" });
  await t.enforcer.idle();
  await t.clock.advance(120_000);
  assert.equal(t.enforcer.tracked.get(LK, "i1")?.state, "connected", "connected outlives expiry");
  t.enforcer.webhook({ event: "participant_left", room: LK, identity: "i1" });
  assert.equal(t.enforcer.tracked.size, 0);
});

Deno.test("tracked: bounded; the oldest waiting entry goes first", () => {
  const tracked = new TrackedParticipants(2);
  const entry = (identity: string) => ({
    roomId: ROOM_ID,
    user: ALICE,
    room: LK,
    identity: identity as LiveKitIdentity,
    state: "waiting" as const,
    expiresAt: 1,
  });
  tracked.put(entry("a"));
  tracked.put(entry("b"));
  tracked.setState(LK, "a", "connected");
  const dropped = tracked.put(entry("c"));
  assert.deepEqual(dropped.map((p) => p.identity), ["b"]);
  assert.deepEqual(tracked.inRoom(ROOM_ID).map((p) => p.identity).sort(), ["a", "c"]);
  // A new token for a connected identity keeps it connected.
  tracked.put(entry("a"));
  assert.equal(tracked.get(LK, "a")?.state, "connected");
});

Deno.test("store: field and value codec round-trip; malformed entries are skipped", async () => {
  const p = {
    roomId: ROOM_ID,
    user: ALICE,
    room: LK,
    identity: "i<1>" as LiveKitIdentity,
    state: "connected" as const,
    expiresAt: 1_784_800_000_000,
  };
  const field = encodeField(p.room, p.identity);
  assert.equal(field, '["lk-room","i\\u003c1\\u003e"]');
  assert.deepEqual(decodeParticipant(field, encodeParticipant(p)), p);
  assert.equal(decodeParticipant(field, '{"roomId":1}'), undefined);
  assert.equal(decodeParticipant("nope", encodeParticipant(p)), undefined);
  const hash = new Map<string, string>([[field, encodeParticipant(p)], ["bad", "x"]]);
  const commands: string[][] = [];
  const store = new ParticipantStore({
    command(args) {
      commands.push(args);
      if (args[0] === "HGETALL") return Promise.resolve([...hash].flat());
      return Promise.resolve(1);
    },
  }, { log: silentLogger });
  assert.deepEqual(await store.loadAll(), [p]);
  store.save(p);
  store.forget(p);
  await store.flush();
  assert.deepEqual(commands.slice(1).map((c) => c.slice(0, 3)), [
    ["HSET", "lk-jwt:participants", field],
    ["HDEL", "lk-jwt:participants", field],
  ]);
});

Deno.test("enforcer: the hash is read at start, again only while that failed (or with replicas)", async () => {
  for (const shared of [false, true]) {
    let reads = 0;
    let down = true;
    const other = {
      roomId: ROOM_ID,
      user: ALICE,
      room: LK,
      identity: "from-elsewhere" as LiveKitIdentity,
      state: "connected" as const,
      expiresAt: 1,
    };
    const store = new ParticipantStore({
      command(args) {
        if (args[0] !== "HGETALL") return Promise.resolve(1);
        reads++;
        if (down) return Promise.reject(new Error("Redis down"));
        return Promise.resolve([encodeField(other.room, other.identity), encodeParticipant(other)]);
      },
    }, { log: silentLogger });
    const enforcer = new MembershipEnforcer({
      serverName: "hs.test",
      homeserver: { isJoined: () => Promise.resolve(true) },
      sfu: {
        removeParticipant: () => Promise.resolve(true),
        deleteRoom: () => Promise.resolve(true),
      },
      clock: new ManualClock(),
      log: silentLogger,
      store,
      sharedStore: shared,
      intervalMs: 0,
      tokenValidityMs: 60_000,
    });
    await enforcer.start();
    assert.equal(enforcer.tracked.size, 0);
    down = false;
    await enforcer.sweep();
    assert.equal(enforcer.tracked.get(LK, "from-elsewhere")?.state, "connected", "read at a sweep");
    await enforcer.sweep();
    assert.equal(reads, shared ? 3 : 2, shared ? "every sweep" : "not again once read");
    await enforcer.shutdown();
  }
});
