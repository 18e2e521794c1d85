/** `/delegate_delayed_leave` (http-api.md §8). */
import assert from "node:assert/strict";
import { testApp } from "../support/app.ts";

const BODY = {
  room_id: "!room:example.com",
  slot_id: "m.call#ROOM",
  openid_token: { access_token: "wxyzOPENID", matrix_server_name: "example.com" },
  member: { id: "member-1", claimed_user_id: "@alice:example.com", claimed_device_id: "DEVICE" },
  delay_id: "syd_abcdefghij",
  delay_timeout: 10000,
};

async function expectError(res: Response, status: number, body: string) {
  assert.equal(res.status, status);
  assert.equal(await res.text(), body + "\n");
}

Deno.test("delegate: success answers {} and registers the job without room creation", async () => {
  const app = testApp();
  const res = await app.post("/delegate_delayed_leave", BODY);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "{}\n");
  assert.equal(app.recorded.rooms.length, 0);
  assert.equal(app.recorded.jobs.length, 1);
  assert.equal(app.recorded.jobs[0]!.room, "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs");
  assert.equal(app.recorded.jobs[0]!.identity, "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU");
});

Deno.test("delegate: validation order and messages without the word 'a' (§8)", async (t) => {
  const cases: Array<[string, unknown, number, string]> = [
    [
      "room",
      { ...BODY, room_id: "" },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `room_id` or `slot_id`"}',
    ],
    [
      "member",
      { ...BODY, member: { id: "m" } },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body `member` is missing `id`, `claimed_user_id` or `claimed_device_id`"}',
    ],
    [
      "openid",
      { ...BODY, openid_token: { access_token: "x" } },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body `openid_token` is missing `access_token` or `matrix_server_name`"}',
    ],
    [
      "delay required",
      { ...BODY, delay_id: undefined, delay_timeout: undefined },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `delay_id` or `delay_timeout`"}',
    ],
    [
      "timeout must be > 0",
      { ...BODY, delay_timeout: 0 },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `delay_id` or `delay_timeout`"}',
    ],
    [
      "dot-dot",
      { ...BODY, delay_id: ".." },
      400,
      '{"errcode":"M_BAD_JSON","error":"The request body contains an invalid `delay_id`"}',
    ],
    [
      "claimed user",
      { ...BODY, member: { ...BODY.member, claimed_user_id: "@bob:example.com" } },
      401,
      '{"errcode":"M_UNAUTHORIZED","error":"The request could not be authorised."}',
    ],
    [
      "restricted → 403",
      {
        ...BODY,
        openid_token: { access_token: "bobtoken", matrix_server_name: "other.org" },
        member: { ...BODY.member, claimed_user_id: "@bob:other.org" },
      },
      403,
      '{"errcode":"M_FORBIDDEN","error":"Delegation of delayed events is only supported for full access users"}',
    ],
  ];
  for (const [name, body, status, expected] of cases) {
    await t.step(name, async () => {
      const app = testApp();
      await expectError(await app.post("/delegate_delayed_leave", body), status, expected);
      assert.equal(app.recorded.jobs.length, 0);
    });
  }
});

Deno.test("delegate: unresolvable CS API → 400", async () => {
  const app = testApp({ csApiFails: true });
  await expectError(
    await app.post("/delegate_delayed_leave", BODY),
    400,
    '{"errcode":"M_BAD_JSON","error":"Unable to resolve client-server API"}',
  );
});
