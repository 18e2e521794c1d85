/**
 * The validation order and exact answers of `/sfu/get` and `/get_token` (http-api.md §6–§7).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { testApp } from "../support/app.ts";
import { ApiError } from "../../lib/http/errors.ts";

const OPENID = {
  access_token: "wxyzOPENID",
  token_type: "Bearer",
  matrix_server_name: "example.com",
  expires_in: 3600,
};
const MEMBER = {
  id: "member-1",
  claimed_user_id: "@alice:example.com",
  claimed_device_id: "DEVICE",
};
const GET_TOKEN = {
  room_id: "!room:example.com",
  slot_id: "m.call#ROOM",
  openid_token: OPENID,
  member: MEMBER,
};
const LEGACY = { room: "!room:example.com", openid_token: OPENID, device_id: "DEVICE" };

async function expectError(res: Response, status: number, body: string) {
  assert.equal(res.status, status);
  assert.equal(await res.text(), body + "\n");
  assert.equal(res.headers.get("content-type"), "application/json");
}

function payload(jwt: string) {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString());
}

Deno.test("get_token: success body, claims and room creation for a full-access user", async () => {
  const app = testApp();
  const res = await app.post("/get_token", GET_TOKEN);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(text.endsWith("}\n"));
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body), ["url", "jwt"]);
  assert.equal(body.url, "wss://sfu.example.com");
  const p = payload(body.jwt);
  assert.equal(p.sub, "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU");
  assert.equal(p.video.room, "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs");
  assert.deepEqual(app.recorded.rooms, ["krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs"]);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
});

Deno.test("sfu/get: legacy body gives the unhashed identity and the m.call#ROOM room", async () => {
  const app = testApp();
  const res = await app.post("/sfu/get", LEGACY);
  assert.equal(res.status, 200);
  const p = payload((await res.json()).jwt);
  assert.equal(p.sub, "@alice:example.com:DEVICE");
  assert.equal(p.identity, "@alice:example.com:DEVICE");
  assert.equal(p.video.room, "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs");
});

Deno.test("sfu/get: MSC4195 body runs the /get_token pipeline (§6.1)", async () => {
  const app = testApp();
  const res = await app.post("/sfu/get", GET_TOKEN);
  const p = payload((await res.json()).jwt);
  assert.equal(p.sub, "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU");
  // MSC4195 messages on /sfu/get, not the legacy ones:
  await expectError(
    await app.post("/sfu/get", { ...GET_TOKEN, slot_id: "" }),
    400,
    '{"errcode":"M_BAD_JSON","error":"The request body is missing `room_id` or `slot_id`"}',
  );
  await expectError(
    await app.post("/sfu/get", { member: MEMBER }),
    400,
    '{"errcode":"M_BAD_JSON","error":"The request body is missing `room_id` or `slot_id`"}',
  );
  // {} and null members fall back to legacy.
  await expectError(
    await app.post("/sfu/get", {}),
    400,
    '{"errcode":"M_BAD_JSON","error":"Missing room parameter"}',
  );
  await expectError(
    await app.post("/sfu/get", { room: null, room_id: null }),
    400,
    '{"errcode":"M_BAD_JSON","error":"Missing room parameter"}',
  );
});

Deno.test("sfu/get: legacy validation order (§6.2)", async (t) => {
  const cases: Array<[string, unknown, number, string]> = [
    ["not json", "{not json", 400, '{"errcode":"M_NOT_JSON","error":"Error reading request"}'],
    [
      "empty room",
      { ...LEGACY, room: "" },
      400,
      '{"errcode":"M_BAD_JSON","error":"Missing room parameter"}',
    ],
    [
      "room before openid",
      { openid_token: {} },
      400,
      '{"errcode":"M_BAD_JSON","error":"Missing room parameter"}',
    ],
    [
      "missing server name",
      { ...LEGACY, openid_token: { access_token: "x" } },
      400,
      '{"errcode":"M_BAD_JSON","error":"Missing OpenID token parameters"}',
    ],
    [
      "pairing: delay_id alone",
      { ...LEGACY, delay_id: "syd_x" },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `delay_id` or `delay_timeout`"}',
    ],
    [
      "pairing: negative timeout with id",
      { ...LEGACY, delay_id: "syd_x", delay_timeout: -5 },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `delay_id` or `delay_timeout`"}',
    ],
    [
      "pairing: timeout alone",
      { ...LEGACY, delay_timeout: 10 },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `delay_id` or `delay_timeout`"}',
    ],
    [
      "dot delay id",
      { ...LEGACY, delay_id: "..", delay_timeout: 10 },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body contains an invalid `delay_id`"}',
    ],
    [
      "forged token",
      { ...LEGACY, openid_token: { ...OPENID, access_token: "forged" } },
      401,
      '{"errcode":"M_UNAUTHORIZED","error":"The request could not be authorised."}',
    ],
  ];
  for (const [name, body, status, expected] of cases) {
    await t.step(name, async () => {
      const app = testApp();
      await expectError(await app.post("/sfu/get", body), status, expected);
      assert.equal(app.recorded.rooms.length, 0);
    });
  }
});

Deno.test("get_token: validation order (§7)", async (t) => {
  const cases: Array<[string, unknown, number, string]> = [
    ["array body", "[]", 400, '{"errcode":"M_NOT_JSON","error":"Error reading request"}'],
    [
      "missing slot",
      { ...GET_TOKEN, slot_id: undefined },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `room_id` or `slot_id`"}',
    ],
    [
      "room before member",
      { openid_token: OPENID },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `room_id` or `slot_id`"}',
    ],
    [
      "member absent",
      { ...GET_TOKEN, member: undefined },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`"}',
    ],
    [
      "member before openid",
      { ...GET_TOKEN, member: { id: "m" }, openid_token: {} },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`"}',
    ],
    [
      "openid fields",
      { ...GET_TOKEN, openid_token: { access_token: "", matrix_server_name: "example.com" } },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body `openid_token` is missing a `access_token` or `matrix_server_name`"}',
    ],
    [
      "pairing",
      { ...GET_TOKEN, delay_id: "syd_x" },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `delay_id` or `delay_timeout`"}',
    ],
    [
      "dot",
      { ...GET_TOKEN, delay_id: ".", delay_timeout: 1000 },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body contains an invalid `delay_id`"}',
    ],
    [
      "claimed user mismatch",
      { ...GET_TOKEN, member: { ...MEMBER, claimed_user_id: "@mallory:example.com" } },
      401,
      '{"errcode":"M_UNAUTHORIZED","error":"The request could not be authorised."}',
    ],
    [
      "claimed user differs only in case",
      { ...GET_TOKEN, member: { ...MEMBER, claimed_user_id: "@Alice:example.com" } },
      401,
      '{"errcode":"M_UNAUTHORIZED","error":"The request could not be authorised."}',
    ],
  ];
  for (const [name, body, status, expected] of cases) {
    await t.step(name, async () => {
      const app = testApp();
      await expectError(await app.post("/get_token", body), status, expected);
      assert.equal(app.recorded.rooms.length, 0);
    });
  }
});

Deno.test("get_token: no verification happens before the body is valid", async () => {
  const app = testApp();
  await app.post("/get_token", { ...GET_TOKEN, delay_id: "syd_x" });
  assert.equal(app.recorded.verifications.length, 0);
});

Deno.test("delay: zero, negative or absent timeout with empty id means no delegation", async () => {
  for (
    const extra of [{ delay_timeout: 0 }, { delay_timeout: -1, delay_id: "" }, { delay_id: "" }, {
      delay_id: null,
    }]
  ) {
    const app = testApp();
    const res = await app.post("/get_token", { ...GET_TOKEN, ...extra });
    assert.equal(res.status, 200, JSON.stringify(extra));
    assert.equal(app.recorded.jobs.length, 0);
    assert.equal(app.recorded.csApi.length, 0);
  }
});

Deno.test("restricted user: token without room creation; delegation refused with 400", async () => {
  const app = testApp();
  const body = {
    ...GET_TOKEN,
    openid_token: { access_token: "bobtoken", matrix_server_name: "other.org" },
    member: { ...MEMBER, claimed_user_id: "@bob:other.org" },
  };
  const res = await app.post("/get_token", body);
  assert.equal(res.status, 200);
  assert.equal(app.recorded.rooms.length, 0);
  await expectError(
    await app.post("/get_token", { ...body, delay_id: "syd_x", delay_timeout: 10000 }),
    400,
    '{"errcode":"M_BAD_JSON","error":"Delegation of delayed events is only supported for full access users"}',
  );
  await expectError(
    await app.post("/sfu/get", {
      room: "!r:x",
      openid_token: body.openid_token,
      device_id: "D",
      delay_id: "syd_x",
      delay_timeout: 10000,
    }),
    400,
    '{"errcode":"M_BAD_JSON","error":"Delegation of delayed events is only supported for full access users"}',
  );
});

Deno.test("full access + delegation: CS API, then CreateRoom, then the job (§6.2 14–16)", async () => {
  const app = testApp();
  const res = await app.post("/get_token", {
    ...GET_TOKEN,
    delay_id: "syd_abcdefghij",
    delay_timeout: 10000,
  });
  assert.equal(res.status, 200);
  assert.deepEqual(app.recorded.csApi, ["example.com"]);
  assert.equal(app.recorded.rooms.length, 1);
  const job = app.recorded.jobs[0]!;
  assert.equal(job.delayId.reveal(), "syd_abcdefghij");
  assert.equal(job.delayTimeoutMs, 10000);
  assert.equal(job.identity, "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU");
  assert.equal(job.userId, "@alice:example.com");
  assert.equal(job.serverName, "example.com");
});

Deno.test("unresolvable CS API answers 400 before any room creation", async () => {
  const app = testApp({ csApiFails: true });
  await expectError(
    await app.post("/sfu/get", { ...LEGACY, delay_id: "syd_x", delay_timeout: 10000 }),
    400,
    '{"errcode":"M_BAD_JSON","error":"Unable to resolve client-server API"}',
  );
  assert.equal(app.recorded.rooms.length, 0);
});

Deno.test("CreateRoom failure answers 500 and registers no job", async () => {
  const app = testApp({ createRoomFails: true });
  await expectError(
    await app.post("/get_token", { ...GET_TOKEN, delay_id: "syd_x", delay_timeout: 10000 }),
    500,
    '{"errcode":"M_UNKNOWN","error":"Unable to create room on SFU"}',
  );
  assert.equal(app.recorded.jobs.length, 0);
});

Deno.test("job registration: timeout too large for nanoseconds (§9.1)", async () => {
  const app = testApp();
  await expectError(
    await app.post(
      "/get_token",
      `${
        JSON.stringify({ ...GET_TOKEN, delay_id: "syd_x" }).slice(0, -1)
      },"delay_timeout":9223372036855000}`,
    ),
    400,
    '{"errcode":"M_BAD_JSON","error":"invalid delay timeout for delayed event job: 9223372036855000ms"}',
  );
  const ok = await app.post("/get_token", {
    ...GET_TOKEN,
    delay_id: "syd_x",
    delay_timeout: 9223372036854,
  });
  assert.equal(ok.status, 200);
});

Deno.test("job registration errors from the manager are passed through", async () => {
  const app = testApp({
    registerError: new ApiError(
      400,
      "M_BAD_JSON",
      "Too many delegated delayed events for this user",
    ),
  });
  await expectError(
    await app.post("/get_token", { ...GET_TOKEN, delay_id: "syd_x", delay_timeout: 1000 }),
    400,
    '{"errcode":"M_BAD_JSON","error":"Too many delegated delayed events for this user"}',
  );
});

Deno.test("subscribe-only restricted users (D6) and validity (D7)", async () => {
  const app = testApp({
    env: { LIVEKIT_RESTRICTED_SUBSCRIBE_ONLY: "true", LIVEKIT_JWT_VALIDITY_SECONDS: "600" },
  });
  const res = await app.post("/get_token", {
    ...GET_TOKEN,
    openid_token: { access_token: "bobtoken", matrix_server_name: "other.org" },
    member: { ...MEMBER, claimed_user_id: "@bob:other.org" },
  });
  const p = payload((await res.json()).jwt);
  assert.equal(p.video.canPublish, false);
  assert.equal(p.video.canPublishData, false);
  assert.equal(p.exp - p.iat, 600);
  const full = payload((await (await app.post("/get_token", GET_TOKEN)).json()).jwt);
  assert.equal(full.video.canPublish, true);
  assert.equal("canPublishData" in full.video, false);
});
