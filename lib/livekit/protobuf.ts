/**
 * The RoomService request messages we send, and the one field we read from a response,
 * encoded by hand (tokens-and-rooms.md §6.3).
 *
 * `@livekit/protocol`'s generated classes produce the same bytes (the tests compare them), but
 * loading that package costs about 18 MiB of resident memory for two messages of three fields;
 * the service's idle footprint matters in small deployments (clients-and-deployments.md §3.1).
 *
 * @module
 */

const encoder = new TextEncoder();

function varint(out: number[], value: number): void {
  let v = value >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

function stringField(out: number[], field: number, value: string): void {
  if (value === "") return;
  const bytes = encoder.encode(value);
  varint(out, (field << 3) | 2);
  varint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

function uint32Field(out: number[], field: number, value: number): void {
  if (value === 0) return;
  varint(out, field << 3);
  varint(out, value);
}

/** `CreateRoomRequest{name=1, empty_timeout=2, max_participants=3, departure_timeout=10}`. */
export function encodeCreateRoomRequest(
  msg: { name: string; emptyTimeout: number; maxParticipants: number; departureTimeout: number },
): Uint8Array {
  const out: number[] = [];
  stringField(out, 1, msg.name);
  uint32Field(out, 2, msg.emptyTimeout);
  uint32Field(out, 3, msg.maxParticipants);
  uint32Field(out, 10, msg.departureTimeout);
  return new Uint8Array(out);
}

/** `RoomParticipantIdentity{room=1, identity=2}`. */
export function encodeRoomParticipantIdentity(msg: { room: string; identity: string }): Uint8Array {
  const out: number[] = [];
  stringField(out, 1, msg.room);
  stringField(out, 2, msg.identity);
  return new Uint8Array(out);
}

/** `DeleteRoomRequest{room=1}`. */
export function encodeDeleteRoomRequest(msg: { room: string }): Uint8Array {
  const out: number[] = [];
  stringField(out, 1, msg.room);
  return new Uint8Array(out);
}

/**
 * Reads `creation_time` (field 5, int64 seconds) of a `Room`, skipping every other field;
 * undefined when the bytes are not a well-formed message.
 */
export function decodeRoomCreationTime(bytes: Uint8Array): bigint | undefined {
  let pos = 0;
  let result = 0n;
  const readVarint = (): bigint | undefined => {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (pos >= bytes.length) return undefined;
      const b = bytes[pos++]!;
      value |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return value;
    }
    return undefined;
  };
  while (pos < bytes.length) {
    const key = readVarint();
    if (key === undefined) return undefined;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const v = readVarint();
      if (v === undefined) return undefined;
      if (field === 5) result = BigInt.asIntN(64, v);
    } else if (wire === 2) {
      const len = readVarint();
      if (len === undefined || pos + Number(len) > bytes.length) return undefined;
      pos += Number(len);
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else return undefined;
    if (pos > bytes.length) return undefined;
  }
  return result;
}
