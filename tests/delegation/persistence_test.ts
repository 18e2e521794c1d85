import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  decodeValue,
  encodeField,
  encodeValue,
  formatRfc3339,
  JOBS_HASH,
} from "../../lib/store/codec.ts";
import { serveDelayedEvents } from "../fakes/delayed_events.ts";
import { TestRedis } from "../fakes/redis.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { ROOM, startHarness } from "./harness.ts";
import { waitFor } from "./support.ts";

const FIELD_A = encodeField(ROOM, "a");

/** Reads the hash until `cond` holds (real time, at most `timeoutMs`). */
async function pollHash(
  redis: TestRedis,
  cond: (hash: Map<string, string>) => boolean,
  timeoutMs = 10_000,
): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hash = await redis.hgetall(JOBS_HASH);
    if (cond(hash)) return hash;
    if (Date.now() > deadline) throw new Error(`hash never matched: ${JSON.stringify([...hash])}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function storedValue(identity: string, options: { at: number; T?: number; id?: string }) {
  return encodeValue({
    delayId: options.id ?? `syd_${identity}`,
    delayTimeoutNs: BigInt(options.T ?? 10_000) * 1_000_000n,
    serverName: "example.com",
    room: ROOM,
    identity,
    restartedAt: formatRfc3339(options.at),
  });
}

Deno.test("persistence: the job is in Redis before register() resolves", async () => {
  const redis = await TestRedis.start();
  const h = await startHarness({ env: { LIVEKIT_REDIS_URL: redis.url } });
  try {
    strictEqual(h.delegation.status().redis, "connected");
    await h.register("a", { T: 10_000 });
    const raw = await redis.hgetall(JOBS_HASH);
    deepStrictEqual([...raw.keys()], [FIELD_A]);
    strictEqual(raw.get(FIELD_A), storedValue("a", { at: h.clock.now() }));
  } finally {
    await h.close();
    await redis.dispose();
  }
});

Deno.test("persistence: a new instance on the same Redis restores, purges and continues", async () => {
  const redis = await TestRedis.start();
  const server = serveDelayedEvents();
  const clock = new ManualClock();
  const env = { LIVEKIT_REDIS_URL: redis.url };
  try {
    const first = await startHarness({ env, clock, server });
    await first.register("a", { T: 10_000 });
    await first.webhook("participant_joined", "a");
    await first.until(() => first.logged("Job signal") >= 2 && first.restarts("syd_a") === 1);
    await first.close();
    const afterFirst = await redis.hgetall(JOBS_HASH);
    strictEqual(afterFirst.size, 1, "shutdown keeps the entry");
    await redis.hset(
      JOBS_HASH,
      encodeField(ROOM, "old"),
      storedValue("old", { at: clock.now() - 20_000 }),
    );

    await clock.advance(3_000);
    const second = await startHarness({ env, clock, server });
    try {
      strictEqual(second.delegation.status().restoreDone, true);
      strictEqual(second.delegation.status().jobs, 1);
      const purged = await redis.hgetall(JOBS_HASH);
      deepStrictEqual([...purged.keys()], [FIELD_A], "expired purged before start returned");
      second.lookup.set(ROOM, "a", "present");
      // Phase 1 already ran once (absent); the next poll finds the participant.
      await clock.advance(1_000);
      await second.until(() => second.restarts("syd_a") === 2, "restart after restore");
      await waitFor(() => second.logged("Job signal") >= 2);
      await second.webhook("participant_left", "a", { reason: "CLIENT_INITIATED" });
      await second.until(() => second.sends("syd_a") === 1);
      await waitFor(() => second.delegation.status().jobs === 0);
      await pollHash(redis, (m) => m.size === 0);
    } finally {
      await second.close();
    }
  } finally {
    await server.close();
    await redis.dispose();
  }
});

Deno.test("persistence: an entry written by the reference implementation is restored and completed", async () => {
  const redis = await TestRedis.start();
  const clock = new ManualClock();
  // Raw field and value as the reference writes them: Go escaping, local offset, nanoseconds.
  const at = new Date(clock.now() - 2_000);
  const local = new Date(at.getTime() + 2 * 3600_000).toISOString().slice(0, 19);
  const rawField = '["krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs","@alice:example.com:DEVICE"]';
  const rawValue =
    `{"Params":{"DelayId":"syd_ref","DelayTimeout":10000000000,"ServerName":"example.com","LiveKitRoom":"krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs","LiveKitIdentity":"@alice:example.com:DEVICE"},"RestartedAt":"${local}.000000001+02:00"}`;
  await redis.hset(JOBS_HASH, rawField, rawValue);
  const h = await startHarness({ env: { LIVEKIT_REDIS_URL: redis.url }, clock });
  try {
    strictEqual(h.delegation.status().jobs, 1);
    strictEqual((await redis.hgetall(JOBS_HASH)).get(rawField), rawValue, "not rewritten");
    h.lookup.set(ROOM, "@alice:example.com:DEVICE", "present");
    await clock.advance(1_000);
    await h.until(() => h.restarts("syd_ref") === 1);
    await waitFor(() => h.logged("Job signal") >= 2);
    await waitFor(() => h.delegation.status().byState.Connected === 1);
    const rewritten = await pollHash(redis, (m) => m.get(rawField) !== rawValue);
    strictEqual(decodeValue(rewritten.get(rawField)!).delayId, "syd_ref");
    strictEqual(decodeValue(rewritten.get(rawField)!).restartedAtText, formatRfc3339(clock.now()));
    await h.webhook("participant_left", "@alice:example.com:DEVICE", { reason: 1 });
    await h.until(() => h.sends("syd_ref") === 1);
    await waitFor(() => h.delegation.status().jobs === 0);
    await pollHash(redis, (m) => m.size === 0);
  } finally {
    await h.close();
    await redis.dispose();
  }
});

Deno.test("persistence: Redis restarted while jobs run — writes are retried, nothing lost", async () => {
  const redis = await TestRedis.start();
  const h = await startHarness({ env: { LIVEKIT_REDIS_URL: redis.url } });
  try {
    await h.register("a");
    await h.register("gone", { T: 1_000 });
    await redis.stop();
    await waitFor(() => h.delegation.status().redis === "unavailable");
    await h.register("b");
    await h.webhook("participant_joined", "a");
    await h.until(() => h.restarts("syd_a") === 1);
    await h.clock.advance(1_000);
    await h.until(() => h.sends("syd_gone") === 1);
    await waitFor(() => h.delegation.status().jobs === 2);
    await redis.resume();
    await waitFor(() => h.delegation.status().redis === "connected", { timeoutMs: 15_000 });
    const lastKnown = await pollHash(
      redis,
      (m) =>
        m.size === 2 && !m.has(encodeField(ROOM, "gone")) && m.has(encodeField(ROOM, "b")) &&
        decodeValue(m.get(FIELD_A)!).restartedAtText === formatRfc3339(h.clock.now() - 1_000),
    );
    const a = decodeValue(lastKnown.get(FIELD_A)!);
    strictEqual(a.restartedAtText, formatRfc3339(h.clock.now() - 1_000), "latest restart time");
    ok(h.lines.some((l) => l.level === "error" && /Redis/.test(l.msg)));
  } finally {
    await h.close();
    await redis.dispose();
  }
});

Deno.test("persistence: Redis unreachable at startup — serving continues, restore when it answers", async () => {
  const redis = await TestRedis.start();
  const clock = new ManualClock();
  await redis.hset(
    JOBS_HASH,
    encodeField(ROOM, "stored"),
    storedValue("stored", { at: clock.now() }),
  );
  await redis.hset(JOBS_HASH, FIELD_A, storedValue("a", { at: clock.now(), id: "syd_stale" }));
  await redis.stop();
  const pending = startHarness({ env: { LIVEKIT_REDIS_URL: redis.url }, clock });
  await clock.advance(5_000);
  const h = await pending;
  try {
    ok(h.lines.some((l) =>
      l.level === "error" &&
      l.msg.startsWith("Could not connect Redis store: store: Redis ping failed: ")
    ));
    deepStrictEqual(
      { redis: h.delegation.status().redis, restoreDone: h.delegation.status().restoreDone },
      { redis: "unavailable", restoreDone: false },
    );
    await h.register("a", { delayId: "syd_live" });
    strictEqual(h.delegation.status().jobs, 1);
    await redis.resume();
    await waitFor(() => h.delegation.status().restoreDone, { timeoutMs: 15_000 });
    strictEqual(h.delegation.status().jobs, 2, "stored job restored next to the live one");
    await pollHash(
      redis,
      (raw) => raw.size === 2 && decodeValue(raw.get(FIELD_A)!).delayId === "syd_live",
    );
  } finally {
    await h.close();
    await redis.dispose();
  }
});

Deno.test("persistence: an app-service job keeps its user and acts as it after a restart", async () => {
  const redis = await TestRedis.start();
  const server = serveDelayedEvents();
  const clock = new ManualClock();
  const env = {
    LIVEKIT_REDIS_URL: redis.url,
    LIVEKIT_AS_TOKEN: "as-token-value",
    LIVEKIT_HS_TOKEN: "hs-token-value",
    LIVEKIT_HS_SERVER_NAME: "example.com",
  };
  const value = encodeValue({
    delayId: "syd_as",
    delayTimeoutNs: 10_000_000_000n,
    serverName: "example.com",
    room: ROOM,
    identity: "as-identity",
    restartedAt: formatRfc3339(clock.now() - 1_000),
    appServiceUser: "@alice:example.com",
  });
  const field = encodeField(ROOM, "as-identity");
  await redis.hset(JOBS_HASH, field, value);
  const h = await startHarness({ env, clock, server });
  try {
    strictEqual(h.delegation.status().jobs, 1);
    h.lookup.set(ROOM, "as-identity", "present");
    await clock.advance(1_000);
    await h.until(() => h.restarts("syd_as") === 1);
    const call = server.fake.callsFor("syd_as", "restart")[0]!;
    strictEqual(call.headers.get("authorization"), "Bearer as-token-value");
    strictEqual(call.query, "?user_id=%40alice%3Aexample.com");
    // The rewritten entry still names the user.
    const rewritten = await pollHash(redis, (m) => m.get(field) !== value);
    strictEqual(decodeValue(rewritten.get(field)!).appServiceUser, "@alice:example.com");
    await h.webhook("participant_left", "as-identity", { reason: "CLIENT_INITIATED" });
    await h.until(() => h.sends("syd_as") === 1);
    const send = server.fake.callsFor("syd_as", "send")[0]!;
    strictEqual(send.headers.get("authorization"), "Bearer as-token-value");
    strictEqual(send.query, "?user_id=%40alice%3Aexample.com");
    // Standalone jobs stay unauthenticated.
    await h.register("plain", { T: 10_000 });
    await h.webhook("participant_joined", "plain");
    await h.until(() => h.restarts("syd_plain") === 1);
    const plain = server.fake.callsFor("syd_plain", "restart")[0]!;
    strictEqual(plain.headers.get("authorization"), null);
    strictEqual(plain.query, "");
    ok(true);
  } finally {
    await h.close();
    await server.close();
    await redis.dispose();
  }
});
