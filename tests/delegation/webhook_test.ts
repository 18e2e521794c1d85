import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { createWebhookHandler, verifyWebhookToken } from "../../lib/delegation/webhook.ts";
import {
  EventIdCache,
  parseWebhookEvent,
  signalForEvent,
} from "../../lib/delegation/webhook_events.ts";
import type { JobSignal } from "../../lib/delegation/state_machine.ts";
import { Secret } from "../../lib/ids.ts";
import { ManualClock } from "../support/manual_clock.ts";
import {
  captureLogger,
  eventBody,
  KEY,
  renderLines,
  SECRET,
  signWebhook,
  webhookRequest,
} from "./support.ts";

// http-api.md §11 test vector.
const VECTOR_TOKEN =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJkZXZrZXkiLCJuYmYiOjE3ODQ4MDAwMDAsImlhdCI6MTc4NDgwMDAwMCwiZXhwIjoxNzg0ODAwMzAwLCJzaGEyNTYiOiJuQTZiL0lkQUtSOXRDdC9UdDVWWlV4T1diREd0bzVHWUxIOE82eFRrNlQwPSJ9.qW2WXHxFCl2XJSJDA9PIfdszUBMehepopWqGboLnBc8";
const VECTOR_BODY =
  '{"event":"participant_left","room":{"name":"krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs"},"participant":{"identity":"@alice:example.com:DEVICE","disconnectReason":"CLIENT_INITIATED"},"id":"EV_example","createdAt":"1784800000"}';
const NOW_S = 1784800000;

function setup(options: { shuttingDown?: boolean } = {}) {
  const clock = new ManualClock(NOW_S * 1000);
  const log = captureLogger();
  const delivered: [string, string, JobSignal][] = [];
  const handler = createWebhookHandler({
    keys: { key: KEY, secret: new Secret("livekit_secret", SECRET) },
    clock,
    log,
    shuttingDown: () => options.shuttingDown ?? false,
    deliver: (room, identity, signal) => void delivered.push([room, identity, signal]),
  });
  return { clock, log, delivered, handler };
}

const ROOM = "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs";

Deno.test("webhook: the http-api.md §11 vector verifies at clock 1784800000", async () => {
  strictEqual(new TextEncoder().encode(VECTOR_BODY).byteLength, 226);
  const { handler, delivered } = setup();
  const res = await handler(webhookRequest(VECTOR_BODY, VECTOR_TOKEN));
  strictEqual(res.status, 200);
  strictEqual(await res.text(), "");
  deepStrictEqual(delivered, [[
    ROOM,
    "@alice:example.com:DEVICE",
    "ParticipantDisconnectedIntentionally",
  ]]);
  strictEqual(res.headers.get("access-control-allow-origin"), null);
});

Deno.test("webhook verifyWebhookToken: the vector is valid exactly within exp + 60 s", () => {
  const body = new TextEncoder().encode(VECTOR_BODY);
  const keys = { key: KEY, secret: new Secret("livekit_secret", SECRET) };
  strictEqual(verifyWebhookToken(VECTOR_TOKEN, { body, keys, nowMs: NOW_S * 1000 }), undefined);
  strictEqual(
    verifyWebhookToken(VECTOR_TOKEN, { body, keys, nowMs: (1784800300 + 60) * 1000 }),
    undefined,
  );
  strictEqual(
    verifyWebhookToken(VECTOR_TOKEN, { body, keys, nowMs: (1784800300 + 61) * 1000 }),
    "token expired",
  );
  strictEqual(
    verifyWebhookToken(VECTOR_TOKEN, { body, keys, nowMs: (1784800000 - 61) * 1000 }),
    "token not valid yet",
  );
  strictEqual(
    verifyWebhookToken(VECTOR_TOKEN, {
      body,
      keys: { key: KEY, secret: new Secret("livekit_secret", "devsecret2") },
      nowMs: NOW_S * 1000,
    }),
    "invalid token signature",
  );
});

Deno.test("webhook: a `Bearer ` prefix is tolerated", async () => {
  const { handler, delivered } = setup();
  const res = await handler(webhookRequest(VECTOR_BODY, `Bearer ${VECTOR_TOKEN}`));
  strictEqual(res.status, 200);
  strictEqual(delivered.length, 1);
});

async function expect401(req: Request, reason: string) {
  const { handler, delivered, log } = setup();
  const res = await handler(req);
  strictEqual(res.status, 401, reason);
  strictEqual(
    await res.text(),
    '{"errcode":"M_UNAUTHORIZED","error":"The request could not be authorised."}\n',
  );
  strictEqual(res.headers.get("content-type"), "application/json");
  strictEqual(delivered.length, 0);
  const warn = log.lines.find((l) => l.level === "warn");
  strictEqual(warn?.fields.reason, reason);
  const text = renderLines(log.lines);
  const token = req.headers.get("authorization");
  if (token) strictEqual(text.includes(token.replace(/^Bearer /, "").split(".")[2]!), false);
}

Deno.test("webhook: signature, claims and body checks answer 401", async (t) => {
  const now = NOW_S;
  await t.step("tampered body", () =>
    expect401(
      webhookRequest(VECTOR_BODY.replace("CLIENT_INITIATED", "JOIN_FAILURE"), VECTOR_TOKEN),
      "body checksum does not match the token",
    ));
  await t.step("bad signature", () =>
    expect401(
      webhookRequest(VECTOR_BODY, signWebhook(VECTOR_BODY, { nowSeconds: now, secret: "other" })),
      "invalid token signature",
    ));
  await t.step("signature of another token", () =>
    expect401(
      webhookRequest(VECTOR_BODY, VECTOR_TOKEN.slice(0, -3) + "AAA"),
      "invalid token signature",
    ));
  await t.step("missing exp", () =>
    expect401(
      webhookRequest(
        VECTOR_BODY,
        signWebhook(VECTOR_BODY, { nowSeconds: now, claims: { exp: undefined } }),
      ),
      "token has no exp claim",
    ));
  await t.step("expired beyond the 60 s leeway", () =>
    expect401(
      webhookRequest(
        VECTOR_BODY,
        signWebhook(VECTOR_BODY, { nowSeconds: now, claims: { exp: now - 61 } }),
      ),
      "token expired",
    ));
  await t.step("nbf beyond the leeway", () =>
    expect401(
      webhookRequest(
        VECTOR_BODY,
        signWebhook(VECTOR_BODY, { nowSeconds: now, claims: { nbf: now + 61 } }),
      ),
      "token not valid yet",
    ));
  await t.step("wrong issuer", () =>
    expect401(
      webhookRequest(VECTOR_BODY, signWebhook(VECTOR_BODY, { nowSeconds: now, key: "otherkey" })),
      "token issuer is not the configured API key",
    ));
  await t.step("alg none", () =>
    expect401(
      webhookRequest(
        VECTOR_BODY,
        signWebhook(VECTOR_BODY, { nowSeconds: now, header: { alg: "none", typ: "JWT" } }),
      ),
      "token algorithm is not HS256",
    ));
  await t.step("alg HS512", () =>
    expect401(
      webhookRequest(
        VECTOR_BODY,
        signWebhook(VECTOR_BODY, { nowSeconds: now, header: { alg: "HS512", typ: "JWT" } }),
      ),
      "token algorithm is not HS256",
    ));
  await t.step("missing sha256", () =>
    expect401(
      webhookRequest(
        VECTOR_BODY,
        signWebhook(VECTOR_BODY, { nowSeconds: now, claims: { sha256: undefined } }),
      ),
      "token has no sha256 claim",
    ));
  await t.step("unpadded sha256", () =>
    expect401(
      webhookRequest(
        VECTOR_BODY,
        signWebhook(VECTOR_BODY, {
          nowSeconds: now,
          claims: { sha256: "nA6b/IdAKR9tCt/Tt5VZUxOWbDGto5GYLH8O6xTk6T0" },
        }),
      ),
      "body checksum does not match the token",
    ));
  await t.step(
    "no Authorization",
    () => expect401(webhookRequest(VECTOR_BODY, undefined), "missing Authorization header"),
  );
  await t.step(
    "not a JWT",
    () => expect401(webhookRequest(VECTOR_BODY, "abc"), "token is not a JWT"),
  );
});

Deno.test("webhook: exp and nbf within the 60 s leeway are accepted", async () => {
  const { handler } = setup();
  const body = eventBody("room_started", { room: "r" });
  for (const claims of [{ exp: NOW_S - 60 }, { nbf: NOW_S + 60 }]) {
    const res = await handler(
      webhookRequest(body, signWebhook(body, { nowSeconds: NOW_S, claims })),
    );
    strictEqual(res.status, 200, JSON.stringify(claims));
  }
});

Deno.test("webhook: method, shutdown, size and body checks in the order of §11", async () => {
  {
    const { handler } = setup();
    const res = await handler(new Request("http://x/sfu_webhook", { method: "GET" }));
    strictEqual(res.status, 405);
    strictEqual(res.headers.get("allow"), "POST");
    strictEqual(res.headers.get("content-type"), "application/json");
    strictEqual(await res.text(), '{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}\n');
    strictEqual(res.headers.get("access-control-allow-origin"), null);
  }
  {
    const { handler } = setup({ shuttingDown: true });
    const res = await handler(webhookRequest(VECTOR_BODY, VECTOR_TOKEN));
    strictEqual(res.status, 503);
    strictEqual(await res.text(), '{"errcode":"M_UNKNOWN","error":"Service is shutting down"}\n');
  }
  {
    const { handler } = setup();
    const big = "x".repeat(1024 * 1024 + 1);
    const res = await handler(webhookRequest(big, undefined));
    strictEqual(res.status, 413, "size is checked before authorization");
    strictEqual(await res.text(), '{"errcode":"M_TOO_LARGE","error":"Request body too large"}\n');
  }
  {
    const { handler, delivered } = setup();
    for (const body of ["{not json", "[]", '"x"', "\xff"]) {
      const res = await handler(
        webhookRequest(body, signWebhook(body, { nowSeconds: NOW_S })),
      );
      strictEqual(res.status, 400, body);
      strictEqual(await res.text(), '{"errcode":"M_NOT_JSON","error":"Error reading request"}\n');
    }
    strictEqual(delivered.length, 0);
  }
  {
    const { handler } = setup();
    const res = await handler(webhookRequest("{not json", "garbage"));
    strictEqual(res.status, 401, "the body is parsed only after the signature check");
  }
});

Deno.test("webhook: only exact redeliveries (same id, same body) are ignored (http-api.md §11)", async () => {
  const { handler, delivered } = setup();
  const send = async (body: string) => {
    const res = await handler(webhookRequest(body, signWebhook(body, { nowSeconds: NOW_S })));
    strictEqual(res.status, 200);
  };
  const withId = eventBody("participant_joined", { room: "r", identity: "a", id: "EV_1" });
  await send(withId);
  await send(withId);
  strictEqual(delivered.length, 1, "an exact redelivery is ignored");
  // Other senders reuse one id for different events: each distinct body is processed.
  await send(eventBody("participant_left", { room: "r", identity: "a", id: "EV_1", reason: 1 }));
  await send(eventBody("participant_joined", { room: "r", identity: "b", id: "EV_1" }));
  strictEqual(delivered.length, 3, "distinct events that reuse an id are all processed");
  const noId = eventBody("participant_joined", { room: "r", identity: "a" });
  await send(noId);
  await send(noId);
  strictEqual(delivered.length, 5, "events without id are never de-duplicated");
});

Deno.test("webhook: events without room or participant are ignored with 200", async () => {
  const { handler, delivered } = setup();
  const bodies = [
    eventBody("participant_left", { identity: "a", reason: "CLIENT_INITIATED" }),
    eventBody("participant_left", { room: "r" }),
    eventBody("participant_joined", { room: "", identity: "a" }),
    eventBody("participant_joined", { room: "r", identity: "" }),
    '{"event":"participant_joined","room":5,"participant":"x"}',
    '{"event":"participant_joined","room":null,"participant":null}',
    "{}",
  ];
  for (const body of bodies) {
    const res = await handler(webhookRequest(body, signWebhook(body, { nowSeconds: NOW_S })));
    strictEqual(res.status, 200, body);
  }
  strictEqual(delivered.length, 0);
});

Deno.test("webhook events: mapping of delegation.md §8", () => {
  const map = (event: string, reason?: string | number) =>
    signalForEvent(parseWebhookEvent(new TextEncoder().encode(eventBody(event, {
      room: "r",
      identity: "a",
      reason,
    }))));
  strictEqual(map("participant_joined"), "ParticipantConnected");
  for (const ev of ["participant_left", "participant_connection_aborted"]) {
    strictEqual(map(ev, "CLIENT_INITIATED"), "ParticipantDisconnectedIntentionally");
    strictEqual(map(ev, 1), "ParticipantDisconnectedIntentionally");
    strictEqual(map(ev, "DUPLICATE_IDENTITY"), "ParticipantMaybeGone");
    strictEqual(map(ev, 2), "ParticipantMaybeGone");
    strictEqual(map(ev, "MIGRATION"), "ParticipantMaybeGone");
    strictEqual(map(ev, 8), "ParticipantMaybeGone");
    strictEqual(map(ev), "ParticipantConnectionAborted");
    for (
      const r of [
        "UNKNOWN_REASON",
        "SERVER_SHUTDOWN",
        "PARTICIPANT_REMOVED",
        "ROOM_DELETED",
        "STATE_MISMATCH",
        "JOIN_FAILURE",
        "SIGNAL_CLOSE",
        "ROOM_CLOSED",
        "USER_UNAVAILABLE",
        "USER_REJECTED",
        "SIP_TRUNK_FAILURE",
        "CONNECTION_TIMEOUT",
        "MEDIA_FAILURE",
        "AGENT_ERROR",
        "SOMETHING_NEW",
        0,
        3,
        7,
        99,
      ]
    ) {
      strictEqual(map(ev, r), "ParticipantConnectionAborted", `${ev} ${r}`);
    }
  }
  for (const ev of ["room_started", "room_finished", "track_published", "egress_started", "x"]) {
    strictEqual(map(ev), undefined, ev);
  }
});

Deno.test("webhook events: snake_case names are accepted", () => {
  const e = parseWebhookEvent(new TextEncoder().encode(
    '{"event":"participant_left","room":{"name":"r"},"participant":{"identity":"a","disconnect_reason":"MIGRATION"},"created_at":"1"}',
  ));
  strictEqual(signalForEvent(e), "ParticipantMaybeGone");
});

Deno.test("webhook events: the redelivery cache expires after 10 minutes and holds at most N pairs", () => {
  const cache = new EventIdCache({ capacity: 3 });
  cache.add("a", "d1", 0);
  strictEqual(cache.has("a", "d1", 599_999), true);
  strictEqual(cache.has("a", "d2", 1), false, "same id, other body");
  strictEqual(cache.has("a", "d1", 600_000), false);
  cache.add("b", "d", 1);
  cache.add("c", "d", 2);
  cache.add("d", "d", 3);
  strictEqual(cache.size, 3);
  strictEqual(cache.has("a", "d1", 4), false);
  strictEqual(cache.has("b", "d", 4), true);
  cache.add("e", "d", 700_000);
  strictEqual(cache.size, 1);
});
