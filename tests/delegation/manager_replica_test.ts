/**
 * What the job manager offers replica coordination (replicas.md §3): stopping a job another
 * replica drives now (no send, no Redis change), signals by Redis field, replays of signals
 * meant for a replica that died, and adopting claimed jobs over a stale local one.
 */
import assert from "node:assert/strict";
import { JobManager } from "../../lib/delegation/manager.ts";
import {
  type DelayId,
  type LiveKitIdentity,
  type LiveKitRoomAlias,
  Secret,
  serverName,
  userId,
} from "../../lib/ids.ts";
import { MemoryHash } from "../../lib/store/backend.ts";
import { encodeField, encodeValue, formatRfc3339 } from "../../lib/store/codec.ts";
import { JobStore } from "../../lib/store/job_store.ts";
import { planRestore } from "../../lib/store/restore.ts";
import { serveDelayedEvents } from "../fakes/delayed_events.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { captureLogger, fetchOutbound, StubCsApi, StubLookup, waitFor } from "./support.ts";

const ROOM = "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs";

function setup() {
  const clock = new ManualClock();
  const server = serveDelayedEvents();
  const hash = new MemoryHash();
  const log = captureLogger();
  const lookup = new StubLookup();
  const outbound = fetchOutbound();
  const manager = new JobManager({
    clock,
    log,
    outbound,
    csApi: new StubCsApi(server.url),
    lookup,
    store: new JobStore({ backend: hash, clock, log }),
    maxJobs: 100,
    maxJobsPerUser: 100,
    sanityIntervalMs: 0,
    timerResolutionMs: 0,
  });
  const register = (identity: string, T = 10_000) =>
    manager.register({
      serverName: serverName("example.com"),
      delayId: new Secret("delay_id", `syd_${identity}`) as DelayId,
      delayTimeoutMs: T,
      room: ROOM as LiveKitRoomAlias,
      identity: identity as LiveKitIdentity,
      userId: userId("@alice:example.com"),
    });
  return {
    clock,
    server,
    hash,
    log,
    lookup,
    manager,
    register,
    async close() {
      await manager.shutdown();
      await outbound.close();
      await server.close();
    },
  };
}

Deno.test("manager: drop stops a job without sending and without touching Redis", async () => {
  const s = setup();
  try {
    await s.register("a");
    const field = encodeField(ROOM, "a");
    const before = s.hash.log.length;
    assert.equal(s.manager.drop(field, "taken over by replica r2"), true);
    assert.equal(s.manager.size, 0);
    assert.equal(s.manager.drop(field, "again"), false);
    await s.clock.advance(20_000);
    assert.equal(s.server.fake.count("syd_a", "send"), 0);
    assert.equal(s.hash.log.length, before, "no HSET/HDEL");
    assert.ok(s.hash.data.has(field), "the entry stays for the replica that drives it now");
    assert.deepEqual(s.manager.fields(), []);
  } finally {
    await s.close();
  }
});

Deno.test("manager: deliverField hands a forwarded signal to the job of that field", async () => {
  const s = setup();
  try {
    await s.register("a");
    const field = encodeField(ROOM, "a");
    assert.equal(s.manager.deliverField(field, "ParticipantConnected"), true);
    await waitFor(() => s.server.fake.count("syd_a", "restart") === 1, { what: "restart" });
    assert.equal(s.manager.deliverField(encodeField(ROOM, "b"), "ParticipantConnected"), false);
    assert.equal(s.manager.deliver(ROOM, "b", "ParticipantConnected"), false);
    assert.equal(s.manager.deliver(ROOM, "a", "ParticipantDisconnectedIntentionally"), true);
    await waitFor(() => s.server.fake.count("syd_a", "send") === 1, { what: "send" });
  } finally {
    await s.close();
  }
});

Deno.test("manager: a replayed leave ends a job that lost its state with its replica (send, not abort)", async () => {
  const s = setup();
  try {
    for (const id of ["left", "aborted", "live"]) await s.register(id);
    // As live signals, these are ignored (left) or abort (aborted) while waiting (§9.2)…
    s.manager.deliverField(encodeField(ROOM, "live"), "ParticipantDisconnectedIntentionally");
    assert.equal(
      s.manager.get(ROOM as LiveKitRoomAlias, "live" as LiveKitIdentity)?.state,
      "WaitingForInitialConnect",
    );
    // …replayed after a takeover, both mean the participant is gone: send.
    s.manager.deliverField(encodeField(ROOM, "left"), "ParticipantDisconnectedIntentionally", {
      replayed: true,
    });
    s.manager.deliverField(encodeField(ROOM, "aborted"), "ParticipantConnectionAborted", {
      replayed: true,
    });
    await waitFor(
      () =>
        s.server.fake.count("syd_left", "send") === 1 &&
        s.server.fake.count("syd_aborted", "send") === 1,
      { what: "sends" },
    );
    assert.equal(s.server.fake.count("syd_live", "send"), 0);
  } finally {
    await s.close();
  }
});

Deno.test("manager: a takeover (replace) wins over a stale local job of the same key", async () => {
  const s = setup();
  try {
    await s.register("a");
    const field = encodeField(ROOM, "a");
    const value = encodeValue({
      delayId: "syd_claimed",
      delayTimeoutNs: 10_000_000_000n,
      serverName: "example.com",
      room: ROOM,
      identity: "a",
      restartedAt: formatRfc3339(s.clock.now()),
    });
    const plan = planRestore(new Map([[field, value]]), {
      nowMs: s.clock.now(),
      isLive: () => false,
    });
    assert.equal(s.manager.applyRestore(plan).restored, 0, "a live job wins a restore");
    const { restored, fields } = s.manager.applyRestore(plan, { replace: true, what: "Took over" });
    assert.equal(restored, 1);
    assert.deepEqual(fields, [field]);
    s.manager.deliverField(field, "ParticipantConnected");
    await waitFor(() => s.server.fake.count("syd_claimed", "restart") === 1, { what: "restart" });
    assert.equal(s.server.fake.count("syd_a", "restart"), 0);
    assert.ok(s.log.lines.some((l) => l.msg === "Took over"));
  } finally {
    await s.close();
  }
});
