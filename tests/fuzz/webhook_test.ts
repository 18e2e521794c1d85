/**
 * Generated-input tests of the `/sfu_webhook` endpoint (http-api.md §11, D8;
 * lib/delegation/webhook.ts): any body with any `Authorization` header is answered 200, 400,
 * 401 or 413 and never throws; a correctly signed body is 200 when it is a JSON object and 400
 * otherwise; only correctly signed events ever reach a job.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { createWebhookHandler } from "../../lib/delegation/webhook.ts";
import { MAX_WEBHOOK_BODY } from "../../lib/http/body.ts";
import { Secret } from "../../lib/ids.ts";
import { silentLogger } from "../../lib/log.ts";
import { signWebhook } from "../fakes/sfu.ts";
import { ManualClock } from "../support/manual_clock.ts";

const KEY = "devkey";
const SECRET = "devsecret-devsecret-devsecret-devsecret";

function handler() {
  const clock = new ManualClock();
  const delivered: Array<{ room: string; identity: string }> = [];
  const handle = createWebhookHandler({
    keys: { key: KEY, secret: new Secret("livekit_secret", SECRET) },
    clock,
    log: silentLogger,
    shuttingDown: () => false,
    deliver: (room, identity) => void delivered.push({ room, identity }),
  });
  return { clock, delivered, handle, nowSeconds: () => Math.floor(clock.now() / 1000) };
}

function post(body: Uint8Array, authorization: string | undefined): Request {
  const headers = new Headers({ "Content-Type": "application/webhook+json" });
  if (authorization !== undefined) headers.set("Authorization", authorization);
  return new Request("http://service.test/sfu_webhook", {
    method: "POST",
    body: body as Uint8Array<ArrayBuffer>,
    headers,
  });
}

const enc = new TextEncoder();

/** Event-shaped bodies: what LiveKit sends, with fields of any type. */
const eventBody = fc.record({
  event: fc.oneof(
    fc.constantFrom("participant_joined", "participant_left", "participant_connection_aborted"),
    fc.jsonValue({ maxDepth: 1 }),
  ),
  id: fc.oneof(fc.constantFrom("EV_1", "EV_2", ""), fc.jsonValue({ maxDepth: 1 })),
  room: fc.oneof(
    fc.record({ name: fc.oneof(fc.constantFrom("room", ""), fc.jsonValue({ maxDepth: 1 })) }),
    fc.jsonValue({ maxDepth: 2 }),
  ),
  participant: fc.oneof(
    fc.record({
      identity: fc.oneof(fc.constantFrom("@a:b:DEV", ""), fc.jsonValue({ maxDepth: 1 })),
      disconnectReason: fc.oneof(
        fc.constantFrom("CLIENT_INITIATED", "DUPLICATE_IDENTITY", "MIGRATION", 1, 2, 8, 99),
        fc.jsonValue({ maxDepth: 1 }),
      ),
    }, { requiredKeys: [] }),
    fc.jsonValue({ maxDepth: 2 }),
  ),
}, { requiredKeys: [] });

const bodyText = fc.oneof(
  eventBody.map((b) => JSON.stringify(b)),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

const bodyBytes = fc.oneof(
  { arbitrary: bodyText.map((t) => enc.encode(t)), weight: 8 },
  { arbitrary: fc.uint8Array({ maxLength: 128 }), weight: 2 },
  { arbitrary: fc.constant(new Uint8Array(MAX_WEBHOOK_BODY + 1).fill(0x20)), weight: 1 },
);

const b64url = fc.string({ unit: fc.constantFrom(..."AZaz09-_=+/.".split("")), maxLength: 30 });

function jwtWith(header: unknown, claims: unknown, secret: string): string {
  const h = Buffer.from(JSON.stringify(header)).toString("base64url");
  const p = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const input = `${h}.${p}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** Authorization values: absent, garbage, JWT-shaped garbage, and near-valid tokens. */
function authorization(body: Uint8Array, nowSeconds: number): fc.Arbitrary<string | undefined> {
  const valid = signWebhook(body, { key: KEY, secret: SECRET, nowSeconds });
  return fc.oneof(
    fc.constant(undefined),
    fc.string({ unit: "binary-ascii", maxLength: 60 }).map((v) => v.replace(/[\0\r\n]/g, "")),
    fc.tuple(b64url, b64url, b64url).map((parts) => parts.join(".")),
    fc.constant(valid),
    fc.constant(`Bearer ${valid}`),
    fc.constant(`bearer ${valid}`),
    fc.constant(signWebhook(body, { key: KEY, secret: "wrong-secret", nowSeconds })),
    fc.constant(signWebhook(body, { key: "other", secret: SECRET, nowSeconds })),
    fc.constant(signWebhook("tampered", { key: KEY, secret: SECRET, nowSeconds })),
    fc.constant(signWebhook(body, { key: KEY, secret: SECRET, nowSeconds: nowSeconds - 4000 })),
    fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 })).map(([h, c]) =>
      jwtWith(h, c, SECRET)
    ),
    fc.record({
      iss: fc.oneof(fc.constant(KEY), fc.jsonValue({ maxDepth: 1 })),
      exp: fc.oneof(fc.constant(nowSeconds + 60), fc.jsonValue({ maxDepth: 1 })),
      nbf: fc.oneof(fc.constant(nowSeconds), fc.jsonValue({ maxDepth: 1 })),
      sha256: fc.jsonValue({ maxDepth: 1 }),
    }, { requiredKeys: [] }).map((claims) => jwtWith({ alg: "HS256" }, claims, SECRET)),
  );
}

Deno.test("fuzz webhook: any body and Authorization header → 200, 400, 401 or 413", async () => {
  const { handle, nowSeconds } = handler();
  const seen = new Set<number>();
  await fc.assert(
    fc.asyncProperty(
      bodyBytes.chain((body) => fc.tuple(fc.constant(body), authorization(body, nowSeconds()))),
      async ([body, auth]) => {
        const res = await handle(post(body, auth));
        seen.add(res.status);
        assert.ok([200, 400, 401, 413].includes(res.status), `status ${res.status}`);
        await res.body?.cancel();
      },
    ),
    { numRuns: 1000 },
  );
  assert.ok([200, 400, 401, 413].every((s) => seen.has(s)), [...seen].join(","));
});

Deno.test("fuzz webhook: correctly signed bodies → 200 for JSON objects, 400 otherwise", async () => {
  const { handle, nowSeconds, delivered } = handler();
  await fc.assert(
    fc.asyncProperty(bodyText, fc.boolean(), async (text, bearer) => {
      const body = enc.encode(text);
      const token = signWebhook(body, { key: KEY, secret: SECRET, nowSeconds: nowSeconds() });
      const res = await handle(post(body, bearer ? `Bearer ${token}` : token));
      let isObject = false;
      try {
        const doc: unknown = JSON.parse(text);
        isObject = typeof doc === "object" && doc !== null && !Array.isArray(doc);
      } catch {
        isObject = false;
      }
      assert.equal(res.status, isObject ? 200 : 400, text);
      await res.body?.cancel();
    }),
    { numRuns: 1500 },
  );
  for (const d of delivered) {
    assert.equal(typeof d.room, "string");
    assert.ok(d.room !== "" && d.identity !== "", JSON.stringify(d));
  }
});

Deno.test("fuzz webhook: nothing unsigned reaches a job", async () => {
  const { handle, delivered, nowSeconds } = handler();
  await fc.assert(
    fc.asyncProperty(eventBody, async (event) => {
      const body = enc.encode(JSON.stringify(event));
      const token = signWebhook(body, {
        key: KEY,
        secret: "wrong-secret",
        nowSeconds: nowSeconds(),
      });
      const res = await handle(post(body, token));
      assert.equal(res.status, 401);
      await res.body?.cancel();
    }),
    { numRuns: 500 },
  );
  assert.deepEqual(delivered, []);
});
