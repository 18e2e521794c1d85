/**
 * `RemoveParticipant` and `DeleteRoom` (membership enforcement, app-service.md §8): exact
 * protobuf bodies, the grants LiveKit checks, "not found" answered as `false`, other failures
 * rejected.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DeleteRoomRequest } from "@livekit/protocol";
import { createRoomService, TwirpError } from "../../lib/livekit/room_service.ts";
import { encodeDeleteRoomRequest } from "../../lib/livekit/protobuf.ts";
import { type LiveKitIdentity, type LiveKitRoomAlias, Secret } from "../../lib/ids.ts";
import { silentLogger } from "../../lib/log.ts";
import { systemClock } from "../../lib/clock.ts";
import { startFakeSfu } from "../fakes/sfu.ts";

const SECRET = "devsecret-devsecret-devsecret-devsecret";
const room = "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs" as LiveKitRoomAlias;
const identity = "M3VnsLXrkbxIDINXO64u8PZzFyD9ZYFiQULR2dshWYs" as LiveKitIdentity;

function service(apiBase: string) {
  return createRoomService({
    apiBase,
    key: "devkey",
    secret: new Secret("livekit_secret", SECRET),
    clock: systemClock,
    log: silentLogger,
  });
}

Deno.test("protobuf: DeleteRoomRequest identical to @livekit/protocol", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), (name) => {
      const ours = encodeDeleteRoomRequest({ room: name });
      const theirs = new DeleteRoomRequest({ room: name }).toBinary();
      assert.deepEqual([...ours], [...theirs]);
    }),
    { numRuns: 200 },
  );
});

Deno.test("room service: RemoveParticipant with a roomAdmin token for the room; not_found is false", async () => {
  const sfu = startFakeSfu();
  const rs = service(sfu.url);
  try {
    sfu.setPresent(room, identity, true);
    assert.equal(await rs.removeParticipant(room, identity), true);
    const call = sfu.calls.at(-1)!;
    assert.equal(call.path, "/twirp/livekit.RoomService/RemoveParticipant");
    assert.equal(call.contentType, "application/protobuf");
    assert.deepEqual(call.grant, { roomAdmin: true, room });
    const enc = new TextEncoder();
    assert.deepEqual([...call.body], [
      0x0a,
      0x2b,
      ...enc.encode(room),
      0x12,
      0x2b,
      ...enc.encode(identity),
    ]);
    assert.deepEqual(sfu.removed, [`${room}/${identity}`]);
    assert.equal(await rs.removeParticipant(room, identity), false, "already gone");
  } finally {
    rs.close();
    await sfu.close();
  }
});

Deno.test("room service: DeleteRoom with a roomCreate token; not_found is false; errors reject", async () => {
  const sfu = startFakeSfu();
  const rs = service(sfu.url);
  try {
    await rs.createRoom(room);
    assert.equal(await rs.deleteRoom(room), true);
    const call = sfu.calls.at(-1)!;
    assert.equal(call.path, "/twirp/livekit.RoomService/DeleteRoom");
    assert.deepEqual(call.grant, { roomCreate: true });
    assert.deepEqual([...call.body], [0x0a, 0x2b, ...new TextEncoder().encode(room)]);
    assert.deepEqual(sfu.deleted, [room]);
    assert.equal(await rs.deleteRoom(room), false);
    sfu.failNext = [{ status: 503, body: '{"code":"unavailable","msg":"busy"}' }];
    const err = await rs.deleteRoom(room).catch((e) => e);
    assert.ok(err instanceof TwirpError);
    assert.equal(err.code, "unavailable");
  } finally {
    rs.close();
    await sfu.close();
  }
});
