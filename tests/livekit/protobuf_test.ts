/** Our hand-encoded RoomService messages equal `@livekit/protocol`'s bytes (tokens-and-rooms.md §6.3). */
import assert from "node:assert/strict";
import fc from "fast-check";
import { CreateRoomRequest, Room, RoomParticipantIdentity } from "@livekit/protocol";
import {
  decodeRoomCreationTime,
  encodeCreateRoomRequest,
  encodeRoomParticipantIdentity,
} from "../../lib/livekit/protobuf.ts";

Deno.test("protobuf: CreateRoomRequest bytes of the spec example", () => {
  const name = "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs";
  const bytes = encodeCreateRoomRequest({
    name,
    emptyTimeout: 300,
    maxParticipants: 0,
    departureTimeout: 20,
  });
  assert.deepEqual([...bytes], [
    0x0a,
    0x2b,
    ...new TextEncoder().encode(name),
    0x10,
    0xac,
    0x02,
    0x50,
    0x14,
  ]);
});

Deno.test("protobuf: identical to @livekit/protocol for any input", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme", maxLength: 300 }),
      fc.string({ unit: "grapheme", maxLength: 300 }),
      fc.nat(),
      fc.nat(),
      (room, identity, t1, t2) => {
        const a = encodeCreateRoomRequest({
          name: room,
          emptyTimeout: t1,
          maxParticipants: 0,
          departureTimeout: t2,
        });
        const b = new CreateRoomRequest({
          name: room,
          emptyTimeout: t1,
          maxParticipants: 0,
          departureTimeout: t2,
        }).toBinary();
        assert.deepEqual([...a], [...b]);
        const c = encodeRoomParticipantIdentity({ room, identity });
        const d = new RoomParticipantIdentity({ room, identity }).toBinary();
        assert.deepEqual([...c], [...d]);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("protobuf: Room.creation_time is read, other fields skipped", () => {
  const room = new Room({
    sid: "RM_x",
    name: "n",
    creationTime: 1784800000n,
    metadata: "m",
    numParticipants: 3,
  });
  assert.equal(decodeRoomCreationTime(room.toBinary()), 1784800000n);
  assert.equal(decodeRoomCreationTime(new Uint8Array()), 0n);
  assert.equal(decodeRoomCreationTime(new Uint8Array([0x0a, 0x10, 0x41])), undefined);
});
