/**
 * Generated-input tests of request decoding (http-api.md §4, D3; lib/http/decode.ts): for any
 * bytes, `decodeRequestBody` either returns a body whose known fields have their documented
 * types or throws `DecodeError` / `SyntaxError` (both answered `400 M_NOT_JSON`), never anything
 * else; it never accepts a text `JSON.parse` refuses; well-typed bodies decode to themselves.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError, decodeRequestBody, type RequestBody } from "../../lib/http/decode.ts";
import { anyBodyBytes, structurallyMutatedBody, validBody } from "./_bodies.ts";

const enc = new TextEncoder();

function decodeOrError(bytes: Uint8Array): RequestBody | DecodeError | SyntaxError {
  try {
    return decodeRequestBody(bytes);
  } catch (err) {
    if (err instanceof DecodeError || err instanceof SyntaxError) return err;
    throw new Error(
      `unexpected ${String(err)} for ${JSON.stringify(new TextDecoder().decode(bytes))}`,
    );
  }
}

function assertTyped(body: RequestBody): void {
  for (const key of ["room", "room_id", "slot_id", "device_id", "delay_id"] as const) {
    if (key in body) assert.equal(typeof body[key], "string", key);
  }
  if ("delay_timeout" in body) assert.equal(typeof body.delay_timeout, "bigint");
  for (const [key, value] of Object.entries(body.openid_token ?? {})) {
    assert.ok(["access_token", "matrix_server_name", "expires_in"].includes(key), key);
    assert.equal(typeof value, key === "expires_in" ? "bigint" : "string", key);
  }
  for (const [key, value] of Object.entries(body.member ?? {})) {
    assert.ok(["id", "claimed_user_id", "claimed_device_id"].includes(key), key);
    assert.equal(typeof value, "string");
  }
  for (const value of Object.values(body)) assert.notEqual(value, undefined);
}

Deno.test("fuzz decode: any bytes give a typed body or DecodeError/SyntaxError", () => {
  fc.assert(
    fc.property(anyBodyBytes, (bytes) => {
      const result = decodeOrError(bytes);
      if (!(result instanceof Error)) assertTyped(result);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("fuzz decode: nothing JSON.parse refuses is accepted", () => {
  fc.assert(
    fc.property(anyBodyBytes, (bytes) => {
      const result = decodeOrError(bytes);
      if (result instanceof Error) return;
      const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
      JSON.parse(text);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("fuzz decode: known fields of any JSON type never escape as the wrong type", () => {
  fc.assert(
    fc.property(structurallyMutatedBody, (body) => {
      const result = decodeOrError(enc.encode(JSON.stringify(body)));
      if (!(result instanceof Error)) assertTyped(result);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("fuzz decode: well-typed bodies decode to their known fields, unknown ones dropped", () => {
  fc.assert(
    fc.property(
      validBody,
      fc.string({ maxLength: 6 }),
      fc.jsonValue({ maxDepth: 2 }),
      (body, k, v) => {
        const extra = k in body ? body : { ...body, [k]: v };
        const result = decodeOrError(enc.encode(JSON.stringify(extra)));
        assert.ok(!(result instanceof Error), String(result));
        const openid = body.openid_token as Record<string, unknown>;
        assert.equal(result.openid_token?.access_token, openid.access_token);
        assert.equal(result.openid_token?.matrix_server_name, openid.matrix_server_name);
        assert.equal(result.openid_token?.expires_in, BigInt(String(openid.expires_in)));
        for (const key of ["room", "room_id", "slot_id", "device_id", "delay_id"] as const) {
          assert.equal(result[key], body[key]);
        }
        if (typeof body.delay_timeout === "number") {
          assert.equal(result.delay_timeout, BigInt(JSON.stringify(body.delay_timeout)));
        }
        if (body.member) assert.deepEqual({ ...result.member }, { ...body.member });
        assertTyped(result);
      },
    ),
    { numRuns: 1000 },
  );
});
