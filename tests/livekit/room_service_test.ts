import assert from "node:assert/strict";
import { createRoomService, TwirpError } from "../../lib/livekit/room_service.ts";
import { createRoomCreator } from "../../lib/livekit/rooms.ts";
import { type LiveKitIdentity, type LiveKitRoomAlias, Secret } from "../../lib/ids.ts";
import { silentLogger } from "../../lib/log.ts";
import { systemClock } from "../../lib/clock.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { startFakeSfu } from "../fakes/sfu.ts";

const SECRET = "devsecret-devsecret-devsecret-devsecret";
const room = "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs" as LiveKitRoomAlias;
const identity = "@alice:example.com:DEVICE" as LiveKitIdentity;

function service(apiBase: string, secret = SECRET) {
  return createRoomService({
    apiBase,
    key: "devkey",
    secret: new Secret("livekit_secret", secret),
    clock: systemClock,
    log: silentLogger,
  });
}

Deno.test("room service: CreateRoom sends the exact protobuf bytes with a roomCreate token (§6.3)", async () => {
  const sfu = startFakeSfu();
  const rs = service(sfu.url);
  try {
    await rs.createRoom(room);
    const call = sfu.calls[0]!;
    assert.equal(call.path, "/twirp/livekit.RoomService/CreateRoom");
    assert.equal(call.contentType, "application/protobuf");
    assert.deepEqual(call.grant, { roomCreate: true });
    const name = new TextEncoder().encode(room);
    assert.deepEqual([...call.body], [0x0a, 0x2b, ...name, 0x10, 0xac, 0x02, 0x50, 0x14]);
  } finally {
    rs.close();
    await sfu.close();
  }
});

Deno.test("room service: the path prefix of LIVEKIT_URL is kept (§6.1)", async () => {
  const sfu = startFakeSfu({ prefix: "/livekit/sfu" });
  const rs = service(sfu.url);
  try {
    await rs.createRoom(room);
    assert.equal(sfu.calls[0]!.path, "/livekit/sfu/twirp/livekit.RoomService/CreateRoom");
  } finally {
    rs.close();
    await sfu.close();
  }
});

Deno.test("room service: failures carry status and Twirp code (§6.4)", async () => {
  const sfu = startFakeSfu();
  const bad = service(sfu.url, "wrong-secret-wrong-secret-wrong-secret");
  try {
    const err = await bad.createRoom(room).catch((e) => e);
    assert.ok(err instanceof TwirpError);
    assert.equal(err.status, 401);
    assert.equal(err.code, "unauthenticated");
    assert.match(err.message, /HTTP 401 \(unauthenticated\)/);
    sfu.failNext.push({ status: 502, body: "<html>Bad Gateway</html>", contentType: "text/html" });
    const rs = service(sfu.url);
    const err2 = await rs.createRoom(room).catch((e) => e);
    assert.equal(err2.status, 502);
    assert.equal(err2.code, undefined);
    rs.close();
  } finally {
    bad.close();
    await sfu.close();
  }
});

Deno.test("room service: transport errors are reported as such", async () => {
  const sfu = startFakeSfu();
  const url = sfu.url;
  await sfu.close();
  const rs = service(url);
  try {
    const err = await rs.createRoom(room).catch((e) => e);
    assert.ok(err instanceof TwirpError);
    assert.equal(err.kind, "transport");
  } finally {
    rs.close();
  }
});

Deno.test("room service: GetParticipant outcomes present / absent / unknown (§6.6)", async () => {
  const sfu = startFakeSfu();
  const rs = service(sfu.url);
  try {
    assert.equal(await rs.getParticipant(room, identity), "absent");
    const call = sfu.calls[0]!;
    assert.deepEqual(call.grant, { roomAdmin: true, room });
    assert.equal(call.identity, identity);
    sfu.setPresent(room, identity, true);
    assert.equal(await rs.getParticipant(room, identity), "present");
    // A plain 404 from a misrouted proxy is not "absent".
    sfu.failNext.push({ status: 404, body: "404 page not found", contentType: "text/plain" });
    assert.equal(await rs.getParticipant(room, identity), "unknown");
    sfu.failNext.push({ status: 503, body: '{"code":"unavailable","msg":"x"}' });
    assert.equal(await rs.getParticipant(room, identity), "unknown");
  } finally {
    rs.close();
    await sfu.close();
  }
});

Deno.test("rooms: concurrent creations share one call; reuse within 5 s only", async () => {
  let calls = 0;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const clock = new ManualClock();
  const creator = createRoomCreator({
    async createRoom() {
      calls++;
      await gate;
      return { creationTime: 0n };
    },
  }, clock);
  const all = Promise.all([1, 2, 3].map(() => creator.ensureRoom(room)));
  release();
  const results = await all;
  assert.equal(calls, 1);
  assert.deepEqual(results.map((r) => r.shared), [false, true, true]);
  await clock.advance(4_999);
  await creator.ensureRoom(room);
  assert.equal(calls, 1);
  await clock.advance(2);
  await creator.ensureRoom(room);
  assert.equal(calls, 2);
});

Deno.test("rooms: a failed creation is not remembered", async () => {
  let calls = 0;
  const creator = createRoomCreator({
    createRoom() {
      calls++;
      return Promise.reject(new Error("boom"));
    },
  }, new ManualClock());
  await assert.rejects(() => creator.ensureRoom(room));
  await assert.rejects(() => creator.ensureRoom(room));
  assert.equal(calls, 2);
});

Deno.test("room service: responses over 1 MiB are refused (§6.1)", async () => {
  const sfu = startFakeSfu();
  const rs = service(sfu.url);
  try {
    sfu.failNext.push({
      status: 200,
      body: "x".repeat(1024 * 1024 + 1),
      contentType: "application/protobuf",
    });
    const err = await rs.createRoom(room).catch((e) => e);
    assert.ok(err instanceof TwirpError);
    assert.equal(err.kind, "transport");
    assert.match(err.message, /exceeds 1048576 bytes/);
  } finally {
    rs.close();
    await sfu.close();
  }
});
