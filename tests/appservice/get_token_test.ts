/**
 * The client-server and server-server `get_token` of app-service mode (app-service.md §3–§5.2),
 * step by step with exact status and errcode, against a fake Synapse over HTTP.
 */
import assert from "node:assert/strict";
import { asHarness, claimsOf, PATHS, SFU_URL, tokenBody } from "./_harness.ts";
import { memberIdentity, roomAlias } from "../../lib/livekit/names.ts";
import { userId } from "../../lib/ids.ts";
import { renderLines } from "../delegation/support.ts";

const ALICE = "@alice:hs.test";
const ROOM = "!room:hs.test";

Deno.test("app-service: methods and the hs_token come before the body (§3, §4)", async () => {
  const h = asHarness();
  try {
    const options = await h.send(PATHS.csToken, undefined, { method: "OPTIONS", token: null });
    assert.equal(options.status, 200);
    assert.equal(options.res.headers.get("access-control-allow-origin"), null);
    const get = await h.send(PATHS.csToken, undefined, { method: "GET" });
    assert.equal(get.status, 405);
    assert.equal(get.res.headers.get("allow"), "POST, OPTIONS");
    const missing = await h.send(PATHS.csToken, "{not json", { token: null });
    assert.equal(missing.status, 401);
    assert.equal(
      missing.text,
      '{"errcode":"M_MISSING_TOKEN","error":"Missing homeserver access token"}\n',
    );
    for (const token of ["wrong", `${h.hs.hsToken}x`, ""]) {
      const wrong = await h.send(PATHS.csToken, "{not json", { token });
      assert.equal(wrong.status, 401, token);
      assert.equal(
        wrong.text,
        '{"errcode":"M_UNKNOWN_TOKEN","error":"Unrecognised homeserver access token"}\n',
      );
    }
    const basic = await h.app.call(PATHS.csToken, {
      method: "POST",
      headers: { Authorization: `Basic ${h.hs.hsToken}` },
      body: "{}",
    });
    assert.equal(basic.status, 401);
    assert.equal((await basic.json()).errcode, "M_UNKNOWN_TOKEN");
    // The as_token is not the hs_token.
    const asToken = await h.send(PATHS.csToken, tokenBody(), { token: h.hs.asToken });
    assert.equal(asToken.status, 401);
    assert.equal(h.hs.calls.length, 0);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: body decoding and required fields in order (§5.1 steps 1–2)", async () => {
  const h = asHarness();
  try {
    const notJson = await h.send(PATHS.csToken, "{not json");
    assert.equal(notJson.text, '{"errcode":"M_NOT_JSON","error":"Error reading request"}\n');
    const wrongType = await h.send(PATHS.csToken, tokenBody({ url: 5 }));
    assert.equal(wrongType.json.errcode, "M_NOT_JSON");
    const tooLarge = await h.send(PATHS.csToken, tokenBody({ pad: "x".repeat(70_000) }));
    assert.equal(tooLarge.status, 413);
    for (const field of ["url", "room_id", "slot_id", "member_id"]) {
      for (const value of [undefined, null, ""]) {
        const body = tokenBody({ [field]: value });
        if (value === undefined) delete body[field];
        const res = await h.send(PATHS.csToken, body);
        assert.equal(res.status, 400, field);
        assert.equal(
          res.text,
          `{"errcode":"M_BAD_JSON","error":"The request body is missing \`${field}\`"}\n`,
        );
      }
    }
    // Unknown fields are ignored; `server_name` is optional.
    h.hs.join(ROOM, ALICE);
    const ok = await h.send(PATHS.csToken, tokenBody({ future: { x: 1 }, server_name: null }));
    assert.equal(ok.status, 200, ok.text);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: the user header (§5.1 step 3)", async () => {
  const h = asHarness();
  try {
    const none = await h.send(PATHS.csToken, tokenBody(), { user: null });
    assert.equal(none.status, 401);
    assert.equal(none.json.errcode, "M_UNAUTHORIZED");
    for (
      const bad of ["alice", "@alice", "@:hs.test", "@alice:", "@al ice:hs.test", "@a:bad_host"]
    ) {
      const res = await h.send(PATHS.csToken, tokenBody(), { user: bad });
      assert.equal(res.status, 400, bad);
      assert.equal(res.text, '{"errcode":"M_INVALID_PARAM","error":"Invalid user ID"}\n');
    }
    const other = await h.send(PATHS.csToken, tokenBody(), { user: "@alice:other.test" });
    assert.equal(other.status, 403);
    assert.match(renderLines(h.lines), /LIVEKIT_HS_SERVER_NAME/);
    assert.equal(h.hs.count("is_joined"), 0);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: local requests — url, membership, room, token (§5.1 steps 4–6)", async () => {
  const h = asHarness();
  try {
    const wrongUrl = await h.send(PATHS.csToken, tokenBody({ url: "wss://other.example.com" }));
    assert.equal(wrongUrl.status, 400);
    assert.equal(wrongUrl.json.errcode, "M_INVALID_PARAM");
    assert.equal(h.hs.count("is_joined"), 0);
    const notJoined = await h.send(PATHS.csToken, tokenBody());
    assert.equal(notJoined.status, 403);
    assert.equal(
      notJoined.text,
      '{"errcode":"M_FORBIDDEN","error":"Not allowed to join this call"}\n',
    );
    const q = h.hs.calls.find((c) => c.path.includes("is_joined"))!;
    assert.equal(
      q.path,
      `/_matrix/client/unstable/io.element.msc4502/rooms/${encodeURIComponent(ROOM)}/is_joined`,
    );
    assert.equal(q.query.get("mxid"), ALICE);
    assert.equal(q.authorization, `Bearer ${h.hs.asToken}`);
    assert.equal(h.app.recorded.rooms.length, 0);

    h.hs.join(ROOM, ALICE);
    for (const [path, server] of [[PATHS.csToken, undefined], [PATHS.csTokenUnstable, "hs.test"]]) {
      const res = await h.send(path!, tokenBody(server ? { server_name: server } : {}));
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(Object.keys(res.json), ["jwt"]);
      const claims = claimsOf(res.json.jwt as string);
      const now = Math.floor(h.app.clock.now() / 1000);
      assert.equal(claims.sub, memberIdentity(userId(ALICE), "member-1"));
      assert.equal(claims.identity, claims.sub);
      assert.equal(claims.nbf, now);
      assert.equal(claims.iss, "devkey");
      assert.deepEqual(claims.video, {
        roomJoin: true,
        room: roomAlias(ROOM, "m.call#ROOM"),
        roomCreate: false,
        canPublish: true,
        canSubscribe: true,
        canUpdateOwnMetadata: false,
        hidden: false,
      });
    }
    assert.deepEqual(h.app.recorded.rooms, [
      roomAlias(ROOM, "m.call#ROOM"),
      roomAlias(ROOM, "m.call#ROOM"),
    ]);
    assert.equal(h.issued.length, 2);
    assert.equal(h.issued[0]!.local, true);
    // A `true` answer is reused for a few seconds; one is asked again after 5 s.
    assert.equal(h.hs.count("is_joined"), 2);
    await h.app.clock.advance(5_001);
    await h.send(PATHS.csToken, tokenBody());
    assert.equal(h.hs.count("is_joined"), 3);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: identity and room follow the MSC vectors; metadata grant per setting", async () => {
  const h = asHarness({
    LIVEKIT_CAN_UPDATE_OWN_METADATA: "true",
    LIVEKIT_HS_SERVER_NAME: "example.com",
  });
  try {
    h.hs.join("!roomid:example.com", "@alice:example.com");
    const res = await h.send(
      PATHS.csToken,
      tokenBody({ room_id: "!roomid:example.com", slot_id: "slot1234", member_id: "memberABC" }),
      { user: "@alice:example.com" },
    );
    assert.equal(res.status, 200, res.text);
    const claims = claimsOf(res.json.jwt as string);
    assert.equal(claims.sub, "M3VnsLXrkbxIDINXO64u8PZzFyD9ZYFiQULR2dshWYs");
    assert.equal(claims.identity, "M3VnsLXrkbxIDINXO64u8PZzFyD9ZYFiQULR2dshWYs");
    const video = claims.video as Record<string, unknown>;
    assert.equal(video.room, "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc");
    assert.equal(video.canUpdateOwnMetadata, true);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: is_joined failures are 502 and name the setting to change (§5.1 step 5)", async () => {
  const h = asHarness();
  try {
    h.hs.settings.scope = false;
    const scope = await h.send(PATHS.csToken, tokenBody());
    assert.equal(scope.status, 502);
    assert.equal(
      scope.text,
      '{"errcode":"M_UNKNOWN","error":"The request could not be completed"}\n',
    );
    assert.match(renderLines(h.lines), /io\.element\.msc4502\.scopes/);
    h.hs.settings.scope = true;
    h.hs.settings.msc4502 = false;
    const off = await h.send(PATHS.csToken, tokenBody());
    assert.equal(off.status, 502);
    assert.match(renderLines(h.lines), /msc4502_enabled/);
    assert.equal(h.app.metrics.homeserverCalls.get({ call: "is_joined", outcome: "forbidden" }), 1);
    assert.equal(
      h.app.metrics.homeserverCalls.get({ call: "is_joined", outcome: "unrecognized" }),
      1,
    );
  } finally {
    await h.close();
  }
});

Deno.test("app-service: concurrent is_joined questions share one call; false is never cached", async () => {
  const h = asHarness();
  try {
    h.hs.settings.isJoinedDelayMs = 50;
    const both = await Promise.all([
      h.send(PATHS.csToken, tokenBody()),
      h.send(PATHS.csToken, tokenBody()),
    ]);
    assert.deepEqual(both.map((r) => r.status), [403, 403]);
    assert.equal(h.hs.count("is_joined"), 1);
    h.hs.join(ROOM, ALICE);
    const joined = await h.send(PATHS.csToken, tokenBody());
    assert.equal(joined.status, 200, "a false answer must not be reused");
    assert.equal(h.hs.count("is_joined"), 2);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: room creation failure is a 500", async () => {
  const h = asHarness({}, { createRoomFails: true });
  try {
    h.hs.join(ROOM, ALICE);
    const res = await h.send(PATHS.csToken, tokenBody());
    assert.equal(res.status, 500);
    assert.equal(res.json.error, "Unable to create room on SFU");
  } finally {
    await h.close();
  }
});

Deno.test("app-service: remote requests are relayed through fed_proxy (§5.1 step 7)", async () => {
  const h = asHarness();
  const remote = "remote.test";
  const body = tokenBody({ server_name: remote, url: "wss://sfu.remote.test" });
  try {
    h.hs.join(ROOM, ALICE);
    // A server not in the room, and a name that cannot be a server.
    const notIn = await h.send(PATHS.csToken, body);
    assert.equal(notIn.status, 403);
    const bogus = await h.send(PATHS.csToken, { ...body, server_name: "bad name!" });
    assert.equal(bogus.status, 403);
    assert.equal(h.hs.count("fed_proxy"), 0);

    h.hs.join(ROOM, `server:${remote}`);
    const seen: Array<{ destination: string; path: string; body: unknown }> = [];
    h.hs.relay = (req) => {
      seen.push(req);
      return { status: 200, content: { jwt: "remote.jwt.value" } };
    };
    const ok = await h.send(PATHS.csToken, body);
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json, { jwt: "remote.jwt.value" });
    assert.deepEqual(seen, [{
      destination: remote,
      path: "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
      body: {
        user_id: ALICE,
        url: "wss://sfu.remote.test",
        room_id: ROOM,
        slot_id: "m.call#ROOM",
        member_id: "member-1",
      },
    }]);
    const call = h.hs.calls.find((c) => c.path.endsWith("/fed_proxy"))!;
    assert.equal(JSON.parse(call.body).method, "POST");
    assert.equal(call.authorization, `Bearer ${h.hs.asToken}`);
    // The url is the remote's business, not ours.
    assert.equal(h.app.recorded.rooms.length, 0);

    const cases: Array<[() => ReturnType<typeof h.hs.relay>, number, string]> = [
      [
        () => ({ status: 403, content: { errcode: "M_FORBIDDEN", error: "@x not in !r" } }),
        403,
        "M_FORBIDDEN",
      ],
      [
        () => ({ status: 400, content: { errcode: "M_INVALID_PARAM", error: "bad url wss://x" } }),
        400,
        "M_INVALID_PARAM",
      ],
      [() => ({ status: 400, content: { errcode: "M_BAD_JSON", error: "x" } }), 502, "M_UNKNOWN"],
      [() => ({ status: 500, content: { errcode: "M_UNKNOWN", error: "boom" } }), 502, "M_UNKNOWN"],
      [() => ({ status: 200, content: { nojwt: true } }), 502, "M_UNKNOWN"],
      [() => ({ status: 403, content: null }), 502, "M_UNKNOWN"],
      [
        () => ({ synapseStatus: 502, errcode: "IO.ELEMENT.MSC4512.M_FEDPROXY_CONNECTION_FAILED" }),
        502,
        "M_UNKNOWN",
      ],
    ];
    for (const [script, status, errcode] of cases) {
      h.hs.relay = script;
      const res = await h.send(PATHS.csToken, body);
      assert.equal(res.status, status, JSON.stringify(script()));
      assert.equal(res.json.errcode, errcode);
      assert.doesNotMatch(res.text, /not in|wss:\/\/x|boom/, "upstream texts are not passed on");
    }
    // The remote does not know the unstable path: once more at v1.
    const paths: string[] = [];
    h.hs.relay = (req) => {
      paths.push(req.path);
      return req.path.includes("/v1/")
        ? { status: 200, content: { jwt: "v1.jwt" } }
        : { status: 404, content: { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" } };
    };
    const fallback = await h.send(PATHS.csToken, body);
    assert.deepEqual(fallback.json, { jwt: "v1.jwt" });
    assert.deepEqual(paths, [
      "/_matrix/federation/unstable/io.element.msc4195/rtc/livekit/get_token",
      "/_matrix/federation/v1/rtc/livekit/get_token",
    ]);
    // MSC4512 off on our homeserver: 502, and the log names the switch.
    h.hs.settings.msc4512 = false;
    const off = await h.send(PATHS.csToken, body);
    assert.equal(off.status, 502);
    assert.match(renderLines(h.lines), /msc4512_enabled/);
    assert.equal(h.app.metrics.relays.get({ outcome: "ok" }), 2);
    assert.equal(h.app.metrics.relays.get({ outcome: "fallback_v1" }), 1);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: federation get_token (§5.2)", async () => {
  const h = asHarness();
  const bob = "@bob:remote.test";
  const body = { ...tokenBody(), user_id: bob };
  const send = (b: unknown, origin: string | undefined = "remote.test") =>
    h.send(PATHS.ssToken, b, { origin, user: null });
  try {
    const missing = await send({ ...body, user_id: undefined });
    assert.equal(
      missing.text,
      '{"errcode":"M_BAD_JSON","error":"The request body is missing `user_id`"}\n',
    );
    const noOrigin = await h.send(PATHS.ssToken, body, { user: null });
    assert.equal(noOrigin.status, 401);
    assert.equal(noOrigin.json.errcode, "M_UNAUTHORIZED");
    const bad = await send({ ...body, user_id: "bob" });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, "M_INVALID_PARAM");
    const other = await send(body, "evil.test");
    assert.equal(other.status, 403);
    assert.equal(h.hs.count("is_joined"), 0);
    // We must be in the room ourselves, then the remote user.
    const unknownRoom = await send(body);
    assert.equal(unknownRoom.status, 403);
    assert.equal(h.hs.calls.at(-1)!.query.get("server_name"), "hs.test");
    h.hs.join(ROOM, "server:hs.test");
    const notJoined = await send(body);
    assert.equal(notJoined.status, 403);
    assert.equal(h.hs.calls.at(-1)!.query.get("mxid"), bob);
    h.hs.join(ROOM, bob);
    const wrongUrl = await send({ ...body, url: "wss://other" });
    assert.equal(wrongUrl.status, 400);
    assert.equal(wrongUrl.json.errcode, "M_INVALID_PARAM");
    for (const path of [PATHS.ssToken, PATHS.ssTokenUnstable]) {
      const ok = await h.send(path, body, { origin: "remote.test", user: null });
      assert.equal(ok.status, 200, ok.text);
      const claims = claimsOf(ok.json.jwt as string);
      const video = claims.video as Record<string, unknown>;
      assert.equal(video.canPublish, false);
      assert.equal(video.roomCreate, false);
      assert.equal(video.hidden, false);
      assert.equal(video.room, roomAlias(ROOM, "m.call#ROOM"));
    }
    assert.equal(h.issued.at(-1)!.local, false);
    assert.equal(h.app.recorded.rooms.length, 2);
    assert.equal(h.app.metrics.appServiceTokens.get({ kind: "federation" }), 2);
  } finally {
    await h.close();
  }
});

Deno.test("app-service: outside app-service mode the paths are unknown; standalone still works", async () => {
  const { testApp } = await import("../support/app.ts");
  const app = testApp({ env: { LIVEKIT_URL: SFU_URL } });
  for (const path of Object.values(PATHS)) {
    const res = await app.call(path, { method: "POST", body: "{}" });
    assert.equal(res.status, 404, path);
    assert.equal((await res.json()).errcode, "M_UNRECOGNIZED");
  }
});

Deno.test("app-service: tokens never reach the logs", async () => {
  const h = asHarness();
  try {
    h.hs.join(ROOM, ALICE);
    await h.send(PATHS.csToken, tokenBody());
    await h.send(PATHS.csToken, tokenBody(), { token: "wrong-token" });
    h.hs.settings.scope = false;
    await h.send(PATHS.csToken, tokenBody({ room_id: "!other:hs.test" }));
    const text = renderLines(h.lines);
    assert.ok(text.length > 0);
    assert.doesNotMatch(text, new RegExp(h.hs.asToken));
    assert.doesNotMatch(text, new RegExp(h.hs.hsToken));
  } finally {
    await h.close();
  }
});

Deno.test("app-service: the answer comes before Synapse's 30 s limit (25 s budget)", async () => {
  const h = asHarness();
  try {
    h.hs.settings.isJoinedDelayMs = 2_000;
    const pending = h.send(PATHS.csToken, tokenBody());
    while (h.hs.count("is_joined") === 0) await new Promise((r) => setTimeout(r, 5));
    await h.app.clock.advance(24_999);
    let done = false;
    pending.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(done, false);
    await h.app.clock.advance(2);
    const res = await pending;
    assert.equal(res.status, 502);
    assert.equal(res.json.errcode, "M_UNKNOWN");
  } finally {
    await h.close();
  }
});
