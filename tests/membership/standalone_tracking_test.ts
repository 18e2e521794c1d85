/**
 * With app-service mode on, tokens the standalone endpoints mint for users of
 * `LIVEKIT_HS_SERVER_NAME` are tracked for membership enforcement too (app-service.md §8);
 * users of other servers are not (the homeserver cannot answer for them).
 */
import assert from "node:assert/strict";
import { testApp } from "../support/app.ts";
import type { IssuedToken } from "../../lib/appservice/ports.ts";
import { hashedIdentity, LEGACY_SLOT, legacyIdentity, roomAlias } from "../../lib/livekit/names.ts";
import { userId } from "../../lib/ids.ts";

const AS_ENV = {
  LIVEKIT_AS_TOKEN: "as-token",
  LIVEKIT_HS_TOKEN: "hs-token",
  LIVEKIT_HS_SERVER_NAME: "example.com",
  LIVEKIT_FULL_ACCESS_HOMESERVERS: "*",
};

function openid(token: string, server: string) {
  return { access_token: token, token_type: "Bearer", matrix_server_name: server };
}

Deno.test("membership: standalone tokens of the own homeserver's users are tracked", async () => {
  const issued: IssuedToken[] = [];
  const app = testApp({ env: AS_ENV, tokens: { tokenIssued: (t) => void issued.push(t) } });
  const msc = await app.post("/get_token", {
    room_id: "!room:example.com",
    slot_id: "m.call#ROOM",
    openid_token: openid("wxyzOPENID", "example.com"),
    member: { id: "m-1", claimed_user_id: "@alice:example.com", claimed_device_id: "DEV" },
  });
  assert.equal(msc.status, 200);
  const legacy = await app.post("/sfu/get", {
    room: "!room:example.com",
    openid_token: openid("wxyzOPENID", "example.com"),
    device_id: "DEV",
  });
  assert.equal(legacy.status, 200);
  const other = await app.post("/sfu/get", {
    room: "!room:example.com",
    openid_token: openid("bobtoken", "other.org"),
    device_id: "DEV",
  });
  assert.equal(other.status, 200);
  const alice = userId("@alice:example.com");
  assert.deepEqual(issued, [
    {
      roomId: "!room:example.com",
      user: alice,
      room: roomAlias("!room:example.com", "m.call#ROOM"),
      identity: hashedIdentity(alice, "DEV", "m-1"),
      local: true,
    },
    {
      roomId: "!room:example.com",
      user: alice,
      room: roomAlias("!room:example.com", LEGACY_SLOT),
      identity: legacyIdentity(alice, "DEV"),
      local: true,
    },
  ]);
});

Deno.test("membership: without app-service mode nothing is tracked", async () => {
  const issued: IssuedToken[] = [];
  const app = testApp({ tokens: { tokenIssued: (t) => void issued.push(t) } });
  const res = await app.post("/sfu/get", {
    room: "!room:example.com",
    openid_token: openid("wxyzOPENID", "example.com"),
    device_id: "DEV",
  });
  assert.equal(res.status, 200);
  assert.deepEqual(issued, []);
});
