/**
 * Generated requests through the whole in-process application (http-api.md §2, §4–§7, §13;
 * tests/support/app.ts): for `/sfu/get`, `/get_token` and `/delegate_delayed_leave`, whatever
 * the body, the answer is never a 5xx and is either the endpoint's success body (`200`) or the
 * newline-terminated `{"errcode","error"}` shape with an errcode of the catalogue and the
 * status that goes with it.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Messages } from "../../lib/http/errors.ts";
import { testApp } from "../support/app.ts";
import { anyBodyBytes } from "./_bodies.ts";

/** Rate limits off, so every request goes through the whole pipeline. */
const NO_LIMITS = {
  LIVEKIT_RATE_LIMIT_IP_PER_SECOND: "0",
  LIVEKIT_RATE_LIMIT_SERVER_PER_SECOND: "0",
  LIVEKIT_RATE_LIMIT_USER_PER_SECOND: "0",
};

/** Status of each errcode the token and delegation endpoints may answer (http-api.md §13). */
const ERRCODE_STATUS: Record<string, number[]> = {
  M_NOT_JSON: [400],
  M_BAD_JSON: [400],
  M_UNAUTHORIZED: [401],
  M_FORBIDDEN: [403],
  M_LIMIT_EXCEEDED: [429],
  M_TOO_LARGE: [413],
};

const KNOWN_MESSAGES = new Set<string>(Object.values(Messages));
/** The one catalogue message with a value in it (http-api.md §13, job registration). */
const DELAY_TIMEOUT_MESSAGE = /^invalid delay timeout for delayed event job: -?[0-9]+ms$/;

async function assertWellFormed(path: string, res: Response): Promise<void> {
  const text = await res.text();
  assert.ok(res.status < 500, `${path} answered ${res.status}: ${text}`);
  assert.equal(res.headers.get("content-type"), "application/json", text);
  assert.ok(text.endsWith("\n") || res.status === 200, `no trailing newline: ${text}`);
  const doc = JSON.parse(text);
  assert.equal(typeof doc, "object");
  if (res.status === 200) {
    if (path === "/delegate_delayed_leave") assert.deepEqual(doc, {});
    else {
      assert.deepEqual(Object.keys(doc).sort(), ["jwt", "url"]);
      assert.equal(typeof doc.jwt, "string");
    }
    return;
  }
  assert.deepEqual(Object.keys(doc).sort(), ["errcode", "error"], text);
  const statuses = ERRCODE_STATUS[doc.errcode];
  assert.ok(statuses, `unknown errcode in ${text}`);
  assert.ok(statuses.includes(res.status), `${res.status} with ${text}`);
  assert.ok(
    KNOWN_MESSAGES.has(doc.error) || DELAY_TIMEOUT_MESSAGE.test(doc.error),
    `message not in the catalogue: ${text}`,
  );
}

/** Any value a header can carry (no NUL, CR, LF), biased towards address lists. */
const headerValue = fc.oneof(
  fc.string({ unit: "binary-ascii", maxLength: 40 }).map((v) => v.replace(/[\0\r\n]/g, "")),
  fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom("unknown", "", " ", "[::1]:80")), {
    maxLength: 4,
  }).map((parts) => parts.join(", ")),
);

for (const path of ["/sfu/get", "/get_token", "/delegate_delayed_leave"]) {
  Deno.test(`fuzz app: ${path} never answers 5xx and always a catalogue error or success`, async () => {
    const app = testApp({ env: NO_LIMITS });
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(anyBodyBytes, fc.option(headerValue), async (bytes, forwarded) => {
        const headers: Record<string, string> = { "Content-Type": "application/json" };
        if (forwarded !== null) headers["X-Forwarded-For"] = forwarded;
        const res = await app.call(path, {
          method: "POST",
          body: bytes as Uint8Array<ArrayBuffer>,
          headers,
          peer: "127.0.0.1",
        });
        seen.add(res.status);
        await assertWellFormed(path, res);
      }),
      { numRuns: 600 },
    );
    // The generators reach both the success path and the error paths.
    assert.ok(seen.has(200) && seen.has(400) && seen.has(401), [...seen].join(","));
  });
}
