import { ok, strictEqual } from "node:assert/strict";
import { decodeValue, encodeField, formatRfc3339 } from "../../lib/store/codec.ts";
import { ROOM, startHarness } from "./harness.ts";

Deno.test("jobs: a participant that never connects → waiting timer → one send → done", async () => {
  const h = await startHarness();
  try {
    await h.register("a", { T: 1_000 });
    ok(h.stored("a"), "persisted before register() resolved");
    strictEqual(h.lookup.count(ROOM, "a"), 1, "phase-1 lookup runs immediately");
    await h.clock.advance(999);
    strictEqual(h.sends("syd_a"), 0);
    await h.clock.advance(1);
    await h.until(() => h.sends("syd_a") === 1 && !h.stored("a"), "send and HDEL");
    strictEqual(h.restarts("syd_a"), 0);
    strictEqual(h.delegation.status().jobs, 0);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: join webhook → restart at once, then every 0.8·T; RestartedAt persisted", async () => {
  const h = await startHarness();
  try {
    await h.register("a", { T: 10_000 });
    await h.clock.advance(300);
    strictEqual(await h.webhook("participant_joined", "a"), 200);
    await h.until(() => h.hash.log.length === 2, "HSET after the first restart");
    strictEqual(h.restarts("syd_a"), 1);
    const field = encodeField(ROOM, "a");
    strictEqual(
      decodeValue(h.hash.data.get(field)!).restartedAtText,
      formatRfc3339(h.clock.now()),
    );
    await h.clock.advance(7_999);
    strictEqual(h.restarts("syd_a"), 1);
    await h.clock.advance(1);
    await h.until(() => h.restarts("syd_a") === 2 && h.hash.log.length === 3);
    await h.clock.advance(8_000);
    await h.until(() => h.restarts("syd_a") === 3 && h.hash.log.length === 4);
    strictEqual(h.sends("syd_a"), 0);
    strictEqual(h.delegation.status().byState.Connected, 1);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: restart period has a 250 ms floor (D14)", async () => {
  const h = await startHarness();
  try {
    // 0.8·T would be 240 ms; the floor makes it 250 ms (still before D = 300 ms).
    await h.register("a", { T: 300 });
    await h.webhook("participant_joined", "a");
    await h.until(() => h.hash.log.length === 2);
    await h.clock.advance(249);
    strictEqual(h.restarts("syd_a"), 1);
    await h.clock.advance(1);
    await h.until(() => h.restarts("syd_a") === 2);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: participant already present → found by phase 1 → restart without webhook", async () => {
  const h = await startHarness();
  try {
    h.lookup.set(ROOM, "a", "present");
    await h.register("a");
    await h.until(() => h.restarts("syd_a") === 1, "first restart");
    strictEqual(h.lookup.count(ROOM, "a"), 1);
    await h.clock.advance(30_000);
    strictEqual(h.lookup.count(ROOM, "a"), 1, "phase 1 stops once Connected");
  } finally {
    await h.close();
  }
});

Deno.test("jobs: phase 1 polls at 0, 1, 2.5, 4.75, 8.125 s until W", async () => {
  const h = await startHarness();
  try {
    await h.register("a", { T: 10_000 });
    const at: number[] = [];
    let seen = 0;
    for (let t = 0; t <= 10_000; t += 125) {
      if (h.lookup.calls.length > seen) {
        seen = h.lookup.calls.length;
        at.push(h.clock.monotonic());
      }
      await h.clock.advance(125);
    }
    strictEqual(at.join(","), "0,1000,2500,4750,8125");
  } finally {
    await h.close();
  }
});

Deno.test("jobs: clean leave → send → done and HDEL", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.webhook("participant_joined", "a");
    await h.until(() => h.hash.log.length === 2);
    await h.clock.advance(2_000);
    await h.webhook("participant_left", "a", { reason: "CLIENT_INITIATED" });
    await h.until(() => h.sends("syd_a") === 1 && !h.stored("a"), "send and HDEL");
    strictEqual(h.hash.log.at(-1), `HDEL ${encodeField(ROOM, "a")}`);
    await h.clock.advance(60_000);
    strictEqual(h.restarts("syd_a"), 1);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: aborted before joining → no homeserver call at all", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.webhook("participant_connection_aborted", "a", { reason: "JOIN_FAILURE" });
    ok(!h.stored("a"));
    await h.clock.advance(20_000);
    strictEqual(h.server.fake.calls.length, 0);
    strictEqual(h.delegation.status().jobs, 0);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: intentional leave while waiting is ignored; the waiting timer still sends", async () => {
  const h = await startHarness();
  try {
    await h.register("a", { T: 2_000 });
    await h.webhook("participant_left", "a", { reason: "CLIENT_INITIATED" });
    strictEqual(h.delegation.status().byState.WaitingForInitialConnect, 1);
    await h.clock.advance(2_000);
    await h.until(() => h.sends("syd_a") === 1 && !h.stored("a"));
  } finally {
    await h.close();
  }
});

Deno.test("jobs: aborted after joining (e.g. SIGNAL_CLOSE) → send", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.webhook("participant_joined", "a");
    await h.until(() => h.hash.log.length === 2);
    await h.webhook("participant_left", "a", { reason: "SIGNAL_CLOSE" });
    await h.until(() => h.sends("syd_a") === 1 && !h.stored("a"));
  } finally {
    await h.close();
  }
});

Deno.test("jobs: restart answering 404 → aborted, no send", async () => {
  const h = await startHarness();
  try {
    h.server.fake.always("syd_a", "restart", { status: 404, body: '{"errcode":"M_NOT_FOUND"}' });
    await h.register("a");
    await h.webhook("participant_joined", "a");
    await h.until(() => !h.stored("a"), "HDEL");
    strictEqual(h.restarts("syd_a"), 1);
    await h.clock.advance(60_000);
    strictEqual(h.sends("syd_a"), 0);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: restart answering M_UNRECOGNIZED → aborted with an ERROR naming the cause", async () => {
  const h = await startHarness();
  try {
    h.server.fake.always("*", "restart", {
      status: 405,
      body: '{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}',
    });
    await h.register("a");
    await h.webhook("participant_joined", "a");
    await h.until(() => !h.stored("a"));
    ok(h.lines.some((l) => l.level === "error" && /MSC4140/.test(l.msg)));
    strictEqual(h.sends("syd_a"), 0);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: send answering 404 → done after exactly one send", async () => {
  const h = await startHarness();
  try {
    h.server.fake.always("syd_a", "send", { status: 404 });
    await h.register("a", { T: 1_000 });
    await h.clock.advance(1_000);
    await h.until(() => !h.stored("a"));
    await h.clock.advance(10_000);
    strictEqual(h.sends("syd_a"), 1);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: 429 with Retry-After waits that long before the next attempt", async () => {
  const h = await startHarness();
  try {
    h.server.fake.script("syd_a", "restart", {
      status: 429,
      headers: { "Retry-After": "3" },
      body: '{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":9000}',
    });
    await h.register("a");
    await h.webhook("participant_joined", "a");
    await h.until(() => h.logged("Delayed-event call rate limited") === 1);
    await h.clock.advance(2_999);
    strictEqual(h.restarts("syd_a"), 1);
    await h.clock.advance(1);
    await h.until(() => h.restarts("syd_a") === 2 && h.hash.log.length === 2);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: homeserver down for the whole window → aborted, no send", async () => {
  const h = await startHarness();
  try {
    h.server.fake.always("syd_a", "restart", { status: 502 });
    await h.register("a", { T: 5_000 });
    await h.webhook("participant_joined", "a");
    for (let i = 0; i < 20 && h.stored("a"); i++) {
      const before = h.restarts("syd_a");
      await h.until(() => h.restarts("syd_a") >= before);
      await h.clock.advance(500);
      await new Promise((r) => setTimeout(r, 20));
    }
    await h.until(() => !h.stored("a"));
    ok(h.restarts("syd_a") >= 3);
    strictEqual(h.sends("syd_a"), 0);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: T below the floor: the late restart finds D passed → aborted, no send", async () => {
  const h = await startHarness();
  try {
    await h.register("a", { T: 100 });
    await h.webhook("participant_joined", "a");
    await h.until(() => h.hash.log.length === 2);
    await h.clock.advance(250);
    await h.until(() => !h.stored("a"));
    strictEqual(h.restarts("syd_a"), 1);
    strictEqual(h.sends("syd_a"), 0);
  } finally {
    await h.close();
  }
});

Deno.test("jobs: sanity check notices a silent departure → send", async () => {
  const h = await startHarness({ env: { LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "1" } });
  try {
    await h.register("a");
    await h.webhook("participant_joined", "a");
    await h.until(() => h.hash.log.length === 2);
    h.lookup.set(ROOM, "a", "present");
    await h.clock.advance(1_000);
    strictEqual(h.lookup.count(ROOM, "a"), 2);
    h.lookup.set(ROOM, "a", "unknown");
    await h.clock.advance(2_000);
    strictEqual(h.lines.filter((l) => l.level === "warn" && /Sanity/.test(l.msg)).length, 1);
    h.lookup.set(ROOM, "a", "absent");
    await h.clock.advance(1_000);
    await h.until(() => h.sends("syd_a") === 1 && !h.stored("a"));
  } finally {
    await h.close();
  }
});

Deno.test("jobs: CS API unresolvable at the restart cycle → aborted; before send → no send", async () => {
  const h = await startHarness();
  try {
    await h.register("a");
    await h.register("b", { T: 1_000 });
    h.csApi.base = undefined;
    await h.webhook("participant_joined", "a");
    await h.clock.advance(1_000);
    await h.until(() => !h.stored("a") && !h.stored("b"));
    strictEqual(h.server.fake.calls.length, 0);
    ok(h.lines.some((l) => l.level === "error" && l.fields.identity === "b"));
  } finally {
    await h.close();
  }
});
