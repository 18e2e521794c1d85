import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { delayHash } from "../../lib/delegation/homeserver.ts";
import { ApiError } from "../../lib/http/errors.ts";
import { MemoryHash } from "../../lib/store/backend.ts";
import { decodeValue, encodeField, encodeValue, formatRfc3339 } from "../../lib/store/codec.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { ROOM, signalsOf, startHarness } from "./harness.ts";
import { renderLines } from "./support.ts";

async function apiError(p: Promise<unknown>, status: number, message: string) {
  await rejects(p, (err: unknown) => {
    ok(err instanceof ApiError);
    strictEqual(err.status, status);
    strictEqual(err.message, message);
    strictEqual(err.errcode, status === 503 ? "M_UNKNOWN" : "M_BAD_JSON");
    return true;
  });
}

Deno.test("manager: T must be 1 ms … 9223372036854 ms", async () => {
  const h = await startHarness();
  try {
    await apiError(
      h.register("a", { T: 9_223_372_036_855 }),
      400,
      "invalid delay timeout for delayed event job: 9223372036855ms",
    );
    await apiError(
      h.register("a", { T: 0 }),
      400,
      "invalid delay timeout for delayed event job: 0ms",
    );
    await h.register("a", { T: 9_223_372_036_854 });
    const v = decodeValue(h.hash.data.get(encodeField(ROOM, "a"))!);
    strictEqual(v.delayTimeoutNs, 9_223_372_036_854_000_000n);
  } finally {
    await h.close();
  }
});

Deno.test("manager: per-user and global caps refuse new keys, replacing is always allowed", async () => {
  const h = await startHarness({
    env: { LIVEKIT_MAX_JOBS_PER_USER: "2", LIVEKIT_MAX_JOBS: "3" },
  });
  try {
    await h.register("a1");
    await h.register("a2");
    await apiError(h.register("a3"), 400, "Too many delegated delayed events for this user");
    await h.register("a2", { delayId: "syd_new" });
    await h.register("b1", { user: "@bob:example.com" });
    await apiError(
      h.register("b2", { user: "@bob:example.com" }),
      400,
      "Too many delegated delayed events",
    );
    strictEqual(h.delegation.status().jobs, 3);
    // A finished job frees its slot.
    await h.webhook("participant_connection_aborted", "a1", { reason: "JOIN_FAILURE" });
    await h.register("a3");
    strictEqual(h.delegation.status().jobs, 3);
  } finally {
    await h.close();
  }
});

Deno.test("manager: replacement — only the newest job acts, the old one never touches Redis", async () => {
  const h = await startHarness();
  try {
    await h.register("a", { delayId: "d1" });
    await h.webhook("participant_joined", "a");
    await h.until(() => h.restarts("d1") === 1 && h.hash.log.length === 2);
    await h.register("a", { delayId: "d2" });
    strictEqual(decodeValue(h.hash.data.get(encodeField(ROOM, "a"))!).delayId, "d2");
    await h.webhook("participant_joined", "a");
    await h.until(() => h.restarts("d2") === 1 && h.hash.log.length === 4);
    await h.clock.advance(8_000);
    await h.until(() => h.restarts("d2") === 2);
    await h.clock.advance(30_000);
    strictEqual(h.restarts("d1"), 1);
    strictEqual(h.sends("d1"), 0);
    ok(!h.hash.log.includes(`HDEL ${encodeField(ROOM, "a")}`));
    strictEqual(h.delegation.status().jobs, 1);
  } finally {
    await h.close();
  }
});

Deno.test("manager: two members of one room never cross-talk", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.register("b");
    await h.webhook("participant_joined", "a");
    await h.webhook("participant_joined", "b");
    await h.until(() => h.restarts("syd_a") === 1 && h.restarts("syd_b") === 1);
    await h.until(() => h.hash.log.length === 4);
    await h.webhook("participant_left", "a", { reason: "CLIENT_INITIATED" });
    await h.until(() => h.sends("syd_a") === 1 && !h.stored("a"));
    ok(h.stored("b"));
    await h.clock.advance(8_000);
    await h.until(() => h.restarts("syd_b") === 2);
    strictEqual(h.sends("syd_b"), 0);
    strictEqual(h.restarts("syd_a"), 1);
    // Events for unknown keys or other rooms are dropped.
    strictEqual(await h.webhook("participant_left", "b", { room: "other", reason: 1 }), 200);
    strictEqual(await h.webhook("participant_left", "nobody", { reason: 1 }), 200);
    ok(h.stored("b"));
  } finally {
    await h.close();
  }
});

Deno.test("manager: duplicate webhook event IDs reach the job once", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.webhook("participant_joined", "a", { id: "EV_1" });
    await h.until(() => h.hash.log.length === 2);
    await h.webhook("participant_left", "a", { id: "EV_2", reason: "DUPLICATE_IDENTITY" });
    h.lookup.set(ROOM, "a", "present");
    await h.webhook("participant_left", "a", { id: "EV_2", reason: "DUPLICATE_IDENTITY" });
    deepStrictEqual(signalsOf(h.lines, "a"), [
      "ParticipantConnected",
      "DelayedEventReset",
      "ParticipantMaybeGone",
    ]);
  } finally {
    await h.close();
  }
});

Deno.test("manager: DUPLICATE_IDENTITY is confirmed with GetParticipant first (D9)", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.register("b");
    for (const id of ["a", "b"]) await h.webhook("participant_joined", id);
    await h.until(() => h.hash.log.length === 4);
    h.lookup.set(ROOM, "a", "present");
    h.lookup.set(ROOM, "b", "absent");
    await h.webhook("participant_left", "a", { reason: "DUPLICATE_IDENTITY" });
    await h.webhook("participant_left", "b", { reason: "MIGRATION" });
    await h.clock.advance(1_999);
    strictEqual(h.sends("syd_b"), 0, "absent is re-checked after 2 s");
    await h.clock.advance(1);
    await h.until(() => h.sends("syd_b") === 1 && !h.stored("b"));
    ok(h.stored("a"));
    strictEqual(h.sends("syd_a"), 0);
    strictEqual(h.lookup.count(ROOM, "b"), 3, "phase 1 once, then two confirmation calls");
  } finally {
    await h.close();
  }
});

Deno.test("manager: confirmation with an unknown SFU gives up after 10 s → aborted", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.webhook("participant_joined", "a");
    await h.until(() => h.hash.log.length === 2);
    h.lookup.set(ROOM, "a", "unknown");
    await h.webhook("participant_left", "a", { reason: "DUPLICATE_IDENTITY" });
    await h.clock.advance(1_000);
    strictEqual(h.sends("syd_a"), 0);
    // Restarts keep the job alive meanwhile; after the 10 s budget the departure is accepted.
    for (let i = 0; i < 12 && h.sends("syd_a") === 0; i++) {
      await h.clock.advance(1_000);
      await new Promise((r) => setTimeout(r, 10));
    }
    await h.until(() => h.sends("syd_a") === 1 && !h.stored("a"));
    ok(h.lookup.count(ROOM, "a") >= 3);
  } finally {
    await h.close();
  }
});

Deno.test("manager: the delay ID and delayed-event URLs are never logged", async () => {
  const h = await startHarness({ env: { LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "1" } });
  try {
    const secretId = "syd_very_secret_capability";
    h.server.fake.script(secretId, "restart", { status: 500 });
    h.lookup.set(ROOM, "a", "unknown");
    await h.register("a", { delayId: secretId, T: 3_000 });
    await h.webhook("participant_joined", "a");
    await h.until(() => h.logged("Delayed-event call failed") === 1);
    await h.clock.advance(1_000);
    await h.until(() => h.restarts(secretId) === 2);
    await h.webhook("participant_left", "a", { reason: 1 });
    await h.until(() => !h.stored("a"));
    const text = renderLines(h.lines);
    ok(!text.includes(secretId));
    ok(!text.includes("delayed_events"));
    ok(h.lines.some((l) => l.fields.delay === delayHash(secretId)));
  } finally {
    await h.close();
  }
});

Deno.test("manager: shutdown stops jobs without sending and keeps Redis entries", async () => {
  const h = await startHarness();
  await h.register("a");
  await h.register("b", { T: 1_000 });
  await h.webhook("participant_joined", "a");
  await h.until(() => h.hash.log.length === 3);
  await h.delegation.shutdown();
  await h.clock.advance(60_000);
  strictEqual(h.sends("syd_a") + h.sends("syd_b"), 0);
  ok(h.stored("a") && h.stored("b"));
  strictEqual(h.hash.log.length, 3);
  await apiError(h.register("c"), 503, "Service is shutting down");
  strictEqual(h.clock.pendingTimers, 0);
  await h.close();
});

Deno.test("manager: a send in flight at shutdown may finish and remove its entry", async () => {
  const h = await startHarness();
  h.server.fake.always("syd_a", "send", { status: 200, delayMs: 200 });
  await h.register("a", { T: 1_000 });
  await h.clock.advance(1_000);
  await h.until(() => h.sends("syd_a") === 1);
  await h.delegation.shutdown();
  ok(!h.stored("a"));
  await h.close();
});

Deno.test("manager: restore recreates stored jobs with the remaining time (D10)", async () => {
  const clock = new ManualClock();
  const hash = new MemoryHash();
  const put = (identity: string, ageMs: number, T = 10_000) =>
    hash.data.set(
      encodeField(ROOM, identity),
      encodeValue({
        delayId: `syd_${identity}`,
        delayTimeoutNs: BigInt(T) * 1_000_000n,
        serverName: "example.com",
        room: ROOM,
        identity,
        restartedAt: formatRfc3339(clock.now() - ageMs),
      }),
    );
  put("fresh", 4_000);
  put("expired", 10_000);
  hash.data.set("junk", "{}");
  const h = await startHarness({ clock, hash });
  try {
    strictEqual(h.delegation.status().restoreDone, true);
    strictEqual(h.delegation.status().jobs, 1);
    ok(!h.stored("expired"));
    ok(h.hash.data.has("junk"));
    strictEqual(h.lookup.count(ROOM, "fresh"), 1, "phase 1 starts at once");
    // W = remaining = 6 s, then a send with the 1 s floor budget.
    await h.clock.advance(5_999);
    strictEqual(h.sends("syd_fresh"), 0);
    await h.clock.advance(1);
    await h.until(() => h.sends("syd_fresh") === 1 && !h.stored("fresh"));
    strictEqual(h.server.fake.count("syd_expired", "send"), 0);
  } finally {
    await h.close();
  }
});

Deno.test("manager: status reports jobs by state and the store", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.register("b");
    await h.webhook("participant_joined", "a");
    deepStrictEqual(h.delegation.status(), {
      jobs: 2,
      byState: { Connected: 1, WaitingForInitialConnect: 1 },
      redis: "connected",
      restoreDone: true,
    });
  } finally {
    await h.close();
  }
});
