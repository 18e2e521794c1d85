/** Request decoding rules (http-api.md §4, D3). */
import assert from "node:assert/strict";
import { decodeRequestBody, isLegacyShape } from "../../lib/http/decode.ts";
import { parseStrictJson } from "../../lib/http/json.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const decode = (s: string) => decodeRequestBody(enc(s));

Deno.test("decode: unknown keys are ignored at every level", () => {
  const body = decode(
    '{"room":"!r","x":[1,{"y":null}],"openid_token":{"access_token":"t","matrix_server_name":"s","extra":true},"member":{"id":"m","zzz":1.5}}',
  );
  assert.equal(body.room, "!r");
  assert.deepEqual(body.openid_token, { access_token: "t", matrix_server_name: "s" });
  assert.deepEqual(body.member, { id: "m" });
});

Deno.test("decode: keys are case-sensitive", () => {
  assert.deepEqual(decode('{"ROOM_ID":"!r","Room":"x"}'), {});
});

Deno.test("decode: null means absent; a null body is {}", () => {
  assert.deepEqual(decode('{"room":null,"openid_token":null,"delay_timeout":null}'), {});
  assert.deepEqual(decode("null"), {});
  assert.deepEqual(decode(" \n null \t"), {});
});

Deno.test("decode: rejects everything §4 lists as M_NOT_JSON", async (t) => {
  const bad: Array<[string, string | Uint8Array]> = [
    ["empty", ""],
    ["invalid", "{not json"],
    ["array", "[]"],
    ["string", '"x"'],
    ["number", "1"],
    ["trailing garbage", '{"room":"x"} x'],
    ["two values", "{}{}"],
    ["duplicate key", '{"room":"a","room":"b"}'],
    ["duplicate nested key", '{"openid_token":{"access_token":"a","access_token":"b"}}'],
    ["duplicate unknown key", '{"x":1,"x":2}'],
    ["number for string", '{"room":1}'],
    ["string timeout", '{"delay_timeout":"8000"}'],
    ["fraction", '{"delay_timeout":8000.5}'],
    ["dot zero", '{"delay_timeout":8000.0}'],
    ["exponent", '{"delay_timeout":8e3}'],
    ["too big", '{"delay_timeout":9223372036854775808}'],
    ["expires_in fraction", '{"openid_token":{"expires_in":1.5}}'],
    ["token_type number", '{"openid_token":{"token_type":1}}'],
    ["array member", '{"member":[]}'],
    ["string openid", '{"openid_token":"x"}'],
    ["bool room_id", '{"room_id":true}'],
    ["delay_cs_api_url number", '{"delay_cs_api_url":5}'],
    ["invalid utf-8", new Uint8Array([0x7b, 0x22, 0x72, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])],
    ["lone high surrogate", '{"room":"\\ud800"}'],
    ["lone low surrogate", '{"room":"\\udc00x"}'],
    ["raw control char", '{"room":"a\u0001"}'],
    ["leading zero", '{"delay_timeout":012}'],
    ["single quotes", "{'room':'x'}"],
    ["deep nesting", "[".repeat(100) + "]".repeat(100)],
  ];
  for (const [name, input] of bad) {
    await t.step(name, () => {
      assert.throws(() => decodeRequestBody(typeof input === "string" ? enc(input) : input));
    });
  }
});

Deno.test("decode: integers are exact 64-bit values; negatives are syntactically fine", () => {
  assert.equal(decode('{"delay_timeout":9223372036854775807}').delay_timeout, 9223372036854775807n);
  assert.equal(
    decode('{"delay_timeout":-9223372036854775808}').delay_timeout,
    -9223372036854775808n,
  );
  assert.equal(decode('{"delay_timeout":-5}').delay_timeout, -5n);
  assert.equal(decode('{"openid_token":{"expires_in":3600}}').openid_token !== undefined, true);
});

Deno.test("decode: valid surrogate pairs and escapes are decoded", () => {
  assert.equal(decode('{"room":"\\ud83d\\ude00\\u00e9\\n"}').room, "😀é\n");
  assert.equal(decode('{"room":"zoë\u2028"}').room, "zoë\u2028");
});

Deno.test("json: a BOM is not whitespace", () => {
  assert.throws(() => parseStrictJson(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])));
});

Deno.test("shape detection (§6.1)", () => {
  assert.equal(isLegacyShape({}), true);
  assert.equal(isLegacyShape({ room: "" }), true);
  assert.equal(isLegacyShape({ room: "x", room_id: "y" }), true);
  assert.equal(isLegacyShape({ room_id: "" }), false);
  assert.equal(isLegacyShape({ slot_id: "s" }), false);
  assert.equal(isLegacyShape({ member: {} }), false);
});
