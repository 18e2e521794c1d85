/** Routing, CORS, methods, limits and shutdown answers (http-api.md §1–§3, §10, §12). */
import assert from "node:assert/strict";
import { CORS_HEADERS } from "../../lib/http/router.ts";
import { testApp } from "../support/app.ts";

const GET_TOKEN = {
  room_id: "!room:example.com",
  slot_id: "m.call#ROOM",
  openid_token: { access_token: "wxyzOPENID", matrix_server_name: "example.com" },
  member: { id: "member-1", claimed_user_id: "@alice:example.com", claimed_device_id: "DEVICE" },
};

function assertCors(res: Response) {
  for (const [k, v] of Object.entries(CORS_HEADERS)) assert.equal(res.headers.get(k), v, k);
  assert.equal(res.headers.get("access-control-allow-credentials"), null);
  assert.equal(res.headers.get("vary"), null);
}

Deno.test("router: OPTIONS answers 200 with CORS headers and an empty body", async () => {
  const app = testApp();
  for (const path of ["/sfu/get", "/get_token", "/delegate_delayed_leave"]) {
    const res = await app.call(path, { method: "OPTIONS" });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "");
    assertCors(res);
  }
});

/** The Matrix body of every 405 (M_UNRECOGNIZED: known endpoint, wrong method). */
const METHOD_BODY = '{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}\n';

Deno.test("router: other methods answer 405 with Allow: POST, OPTIONS and a Matrix error body", async () => {
  const app = testApp();
  for (const path of ["/sfu/get", "/get_token", "/delegate_delayed_leave"]) {
    for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
      const res = await app.call(path, { method });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), "POST, OPTIONS");
      assert.equal(await res.text(), METHOD_BODY);
      assertCors(res);
    }
    // HEAD gets the same status and headers (a HEAD response carries no body).
    const head = await app.call(path, { method: "HEAD" });
    assert.equal(head.status, 405);
    assert.equal(head.headers.get("allow"), "POST, OPTIONS");
    await head.body?.cancel();
    assertCors(head);
  }
});

Deno.test("router: errors carry CORS headers too", async () => {
  const res = await testApp().post("/get_token", "{");
  assert.equal(res.status, 400);
  assertCors(res);
});

Deno.test("router: /healthz GET/HEAD 200 empty, others 405", async () => {
  const app = testApp();
  const get = await app.call("/healthz");
  assert.equal(get.status, 200);
  assert.equal(await get.text(), "");
  assert.equal(get.headers.get("access-control-allow-origin"), null);
  assert.equal((await app.call("/healthz", { method: "HEAD" })).status, 200);
  const post = await app.call("/healthz", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  assert.equal(post.headers.get("content-type"), "application/json");
  assert.equal(post.headers.get("access-control-allow-origin"), null);
  assert.equal(await post.text(), METHOD_BODY);
});

Deno.test("router: exact paths only; unknown paths answer JSON 404", async () => {
  const app = testApp();
  for (const path of ["/get_token/", "//get_token", "/livekit/jwt/get_token", "/", "/GET_TOKEN"]) {
    const res = await app.call(path, { method: "POST", body: "{}" });
    assert.equal(res.status, 404, path);
    assert.equal(await res.text(), '{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}\n');
    assert.equal(res.headers.get("content-type"), "application/json");
  }
  const q = await app.call("/healthz?x=1");
  assert.equal(q.status, 200);
});

Deno.test("router: body over 64 KiB → 413 before decoding", async () => {
  const app = testApp();
  const big = JSON.stringify({ ...GET_TOKEN, pad: "x".repeat(70_000) });
  const res = await app.post("/get_token", big);
  assert.equal(res.status, 413);
  assert.equal(await res.text(), '{"errcode":"M_TOO_LARGE","error":"Request body too large"}\n');
  assertCors(res);
  // Streamed (no Content-Length) bodies are cut too.
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < 70; i++) c.enqueue(new Uint8Array(1024));
      c.close();
    },
  });
  const res2 = await app.call("/get_token", { method: "POST", body: stream });
  assert.equal(res2.status, 413);
  // Exactly 64 KiB is fine (then it is just bad JSON here).
  const res3 = await app.post("/get_token", " ".repeat(65536));
  assert.equal(res3.status, 400);
});

Deno.test("router: shutting down → 503 on POST endpoints", async () => {
  const app = testApp({ shuttingDown: true });
  const res = await app.post("/get_token", GET_TOKEN);
  assert.equal(res.status, 503);
  assert.equal(await res.text(), '{"errcode":"M_UNKNOWN","error":"Service is shutting down"}\n');
  assert.equal((await app.call("/healthz")).status, 200);
});

Deno.test("router: per-IP limit with retry_after_ms and Retry-After (§10)", async () => {
  const app = testApp({
    env: { LIVEKIT_RATE_LIMIT_IP_PER_SECOND: "1", LIVEKIT_RATE_LIMIT_IP_BURST: "2" },
  });
  assert.equal((await app.post("/get_token", GET_TOKEN)).status, 200);
  assert.equal((await app.post("/get_token", GET_TOKEN)).status, 200);
  const limited = await app.post("/get_token", GET_TOKEN);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "1");
  assert.deepEqual(await limited.json(), {
    errcode: "M_LIMIT_EXCEEDED",
    error: "Too many requests",
    retry_after_ms: 1000,
  });
  // Another client is not affected.
  const other = await app.call("/get_token", {
    method: "POST",
    body: JSON.stringify(GET_TOKEN),
    peer: "198.51.100.7",
  });
  assert.equal(other.status, 200);
  await app.clock.advance(1000);
  assert.equal((await app.post("/get_token", GET_TOKEN)).status, 200);
});

Deno.test("router: X-Forwarded-For is believed only from trusted proxies", async () => {
  const env = { LIVEKIT_RATE_LIMIT_IP_PER_SECOND: "1", LIVEKIT_RATE_LIMIT_IP_BURST: "1" };
  const app = testApp({ env });
  const send = (peer: string, xff: string) =>
    app.call("/get_token", {
      method: "POST",
      body: JSON.stringify(GET_TOKEN),
      peer,
      headers: { "x-forwarded-for": xff },
    });
  // Through the trusted loopback proxy: each forwarded client has its own bucket.
  assert.equal((await send("127.0.0.1", "198.51.100.1")).status, 200);
  assert.equal((await send("127.0.0.1", "198.51.100.2")).status, 200);
  assert.equal((await send("127.0.0.1", "198.51.100.1")).status, 429);
  // From an untrusted peer the header is ignored.
  assert.equal((await send("203.0.113.50", "198.51.100.3")).status, 200);
  assert.equal((await send("203.0.113.50", "198.51.100.4")).status, 429);
});

Deno.test("router: per-server limit before verification; listed servers exempt", async () => {
  const env = { LIVEKIT_RATE_LIMIT_SERVER_PER_SECOND: "1", LIVEKIT_RATE_LIMIT_SERVER_BURST: "1" };
  const app = testApp({ env });
  const bob = {
    ...GET_TOKEN,
    openid_token: { access_token: "bobtoken", matrix_server_name: "other.org" },
    member: { ...GET_TOKEN.member, claimed_user_id: "@bob:other.org" },
  };
  assert.equal((await app.post("/get_token", bob)).status, 200);
  assert.equal((await app.post("/get_token", bob)).status, 429);
  assert.equal(app.recorded.verifications.length, 1);
  // example.com is listed explicitly: never limited per server.
  for (let i = 0; i < 3; i++) assert.equal((await app.post("/get_token", GET_TOKEN)).status, 200);
});

Deno.test("router: per-user limit after verification", async () => {
  const app = testApp({
    env: { LIVEKIT_RATE_LIMIT_USER_PER_SECOND: "0.5", LIVEKIT_RATE_LIMIT_USER_BURST: "2" },
  });
  assert.equal((await app.post("/get_token", GET_TOKEN)).status, 200);
  assert.equal((await app.post("/get_token", GET_TOKEN)).status, 200);
  const res = await app.post("/get_token", GET_TOKEN);
  assert.equal(res.status, 429);
  assert.equal((await res.json()).retry_after_ms, 2000);
  assert.equal(res.headers.get("retry-after"), "2");
});

Deno.test("router: every response has an X-Request-Id", async () => {
  const app = testApp();
  const a = await app.call("/healthz");
  const b = await app.post("/get_token", "{");
  assert.match(a.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/);
  assert.notEqual(a.headers.get("x-request-id"), b.headers.get("x-request-id"));
});

Deno.test("router: LIVEKIT_FULL_ACCESS_ONLY refuses other homeservers before any outbound call", async () => {
  const app = testApp({ env: { LIVEKIT_FULL_ACCESS_ONLY: "true" } });
  const bob = {
    ...GET_TOKEN,
    openid_token: { access_token: "bobtoken", matrix_server_name: "other.org" },
    member: { ...GET_TOKEN.member, claimed_user_id: "@bob:other.org" },
  };
  const res = await app.post("/get_token", bob);
  assert.equal(res.status, 401);
  assert.equal(
    await res.text(),
    '{"errcode":"M_UNAUTHORIZED","error":"The request could not be authorised."}\n',
  );
  assert.equal(app.recorded.verifications.length, 0);
  assert.equal(app.metrics.openid.get({ outcome: "blocked" }), 1);
  assert.equal((await app.post("/get_token", GET_TOKEN)).status, 200);
});
