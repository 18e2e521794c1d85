/**
 * Generators of request bodies for the token and delegation endpoints (http-api.md §4–§6):
 * valid legacy / MSC4195 / delegation bodies, the same with known fields replaced by arbitrary
 * JSON values, unknown fields added or fields dropped, and byte-level mutations of their text.
 *
 * @module
 */
import fc from "fast-check";

/** Token the in-process app (tests/support/app.ts) verifies as `@alice:example.com`. */
export const ALICE_TOKEN = "wxyzOPENID";

/** Usually `good` (so whole bodies often pass validation), sometimes one of `bad`. */
function mostly<T>(good: T, ...bad: T[]): fc.Arbitrary<T> {
  return fc.oneof(
    { arbitrary: fc.constant(good), weight: 5 },
    { arbitrary: fc.constantFrom(...bad), weight: 1 },
  );
}

const openidToken = fc.record({
  access_token: mostly(ALICE_TOKEN, "bobtoken", "forged", ""),
  token_type: fc.constant("Bearer"),
  matrix_server_name: mostly("example.com", "other.org", "evil.test", ""),
  expires_in: mostly(3600, 0, -1),
});

const member = fc.record({
  id: mostly("member-1", "", "x".repeat(300)),
  claimed_user_id: mostly("@alice:example.com", "@bob:other.org", "@mallory:example.com"),
  claimed_device_id: mostly("DEVICE", ""),
});

const legacy = fc.record({
  room: mostly("!room:example.com", "", "!r"),
  openid_token: openidToken,
  device_id: mostly("DEVICE", ""),
});

const msc4195 = fc.record({
  room_id: mostly("!room:example.com", ""),
  slot_id: mostly("m.call#ROOM", ""),
  openid_token: openidToken,
  member,
});

const delegation = fc.record({
  room_id: mostly("!room:example.com", ""),
  slot_id: fc.constantFrom("m.call#ROOM"),
  openid_token: openidToken,
  member,
  delay_id: mostly("syd_abc", "", ".", "..", "a/b", "x".repeat(300)),
  delay_timeout: mostly(8000, 0, -1, 1, 86_400_000, 9_007_199_254_740_993),
  delay_cs_api_url: fc.constantFrom("https://evil.test", "http://127.0.0.1"),
});

/** A well-formed body of one of the three shapes (field values may still be rejected later). */
export const validBody: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  legacy,
  msc4195,
  delegation,
);

const KNOWN_KEYS = [
  "room",
  "room_id",
  "slot_id",
  "device_id",
  "openid_token",
  "member",
  "delay_id",
  "delay_timeout",
  "delay_cs_api_url",
  "access_token",
  "matrix_server_name",
  "token_type",
  "expires_in",
  "id",
  "claimed_user_id",
  "claimed_device_id",
];

const anyKey = fc.oneof(fc.constantFrom(...KNOWN_KEYS), fc.string({ maxLength: 8 }));

/** A body whose known fields may carry values of any JSON type, with extra and missing keys. */
export const structurallyMutatedBody: fc.Arbitrary<unknown> = fc.tuple(
  validBody,
  fc.array(fc.tuple(anyKey, fc.jsonValue({ maxDepth: 3 })), { maxLength: 4 }),
  fc.array(fc.constantFrom(...KNOWN_KEYS), { maxLength: 3 }),
  fc.array(fc.tuple(fc.constantFrom("openid_token", "member"), anyKey, fc.jsonValue()), {
    maxLength: 3,
  }),
).map(([body, set, drop, nested]) => {
  const out: Record<string, unknown> = structuredClone(body);
  for (const [k, v] of set) out[k] = v;
  for (const k of drop) delete out[k];
  for (const [parent, k, v] of nested) {
    const p = out[parent];
    if (typeof p === "object" && p !== null && !Array.isArray(p)) {
      (p as Record<string, unknown>)[k] = v;
    }
  }
  return out;
});

const INTERESTING = [
  "{",
  "}",
  "[",
  "]",
  '"',
  ":",
  ",",
  "\\",
  " ",
  "0",
  "9",
  "-",
  "+",
  ".",
  "e",
  "n",
  "t",
  "\u0000",
  "\u001f",
  "\u00ff",
  "\u2028",
  "\\u",
  "\\ud800",
  "null",
];

/** Text-level mutations (insert, delete, replace) of a serialised valid body. */
export const textuallyMutatedBody: fc.Arbitrary<string> = fc.tuple(
  validBody.map((b) => JSON.stringify(b)),
  fc.array(
    fc.tuple(
      fc.nat(),
      fc.constantFrom("insert", "delete", "replace"),
      fc.constantFrom(...INTERESTING),
    ),
    { minLength: 1, maxLength: 4 },
  ),
).map(([text, edits]) => {
  let out = text;
  for (const [pos, op, piece] of edits) {
    const at = out.length === 0 ? 0 : pos % (out.length + 1);
    if (op === "insert") out = out.slice(0, at) + piece + out.slice(at);
    else if (op === "delete") out = out.slice(0, at) + out.slice(at + 1);
    else out = out.slice(0, at) + piece + out.slice(at + 1);
  }
  return out;
});

/** Raw bytes, JSON texts, mutated bodies: everything a client might send. */
export const anyBodyBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 256 }),
  fc.json({ maxDepth: 4 }).map((t) => new TextEncoder().encode(t)),
  fc.json({ maxDepth: 3, stringUnit: "binary" }).map((t) => new TextEncoder().encode(t)),
  structurallyMutatedBody.map((b) => new TextEncoder().encode(JSON.stringify(b))),
  textuallyMutatedBody.map((t) => new TextEncoder().encode(t)),
  validBody.map((b) => new TextEncoder().encode(JSON.stringify(b))),
);
