/**
 * Operator-facing features of the running service: Prometheus metrics, readiness, JSON logs,
 * verification caching under replay and concurrency, the federation override and rate limits
 * behind a trusted proxy.
 */
import assert from "node:assert/strict";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { startFakeSfu } from "../fakes/sfu.ts";
import { TestRedis } from "../fakes/redis.ts";
import { baseEnv, freePort, spawnService } from "../support/service.ts";

const USERINFO = "/_matrix/federation/v1/openid/userinfo";

function body(server: string, token: string, user: string) {
  return JSON.stringify({
    room_id: "!ops:example.com",
    slot_id: "m.call#ROOM",
    openid_token: { access_token: token, matrix_server_name: server, expires_in: 3600 },
    member: { id: "m1", claimed_user_id: user, claimed_device_id: "D" },
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("process: metrics after scripted traffic, on their own listener", async () => {
  const sfu = startFakeSfu();
  const hs = await startFakeHomeserver({ tls: true });
  const server = `localhost:${hs.port}`;
  hs.setUser("good", `@alice:${server}`);
  const metricsPort = freePort();
  const svc = await spawnService({
    env: {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: server,
      SSL_CERT_FILE: hs.ca!.caCertPath,
      LIVEKIT_METRICS_BIND: `127.0.0.1:${metricsPort}`,
      LIVEKIT_RATE_LIMIT_IP_PER_SECOND: "1",
      LIVEKIT_RATE_LIMIT_IP_BURST: "4",
    },
  });
  try {
    const send = (token: string) =>
      fetch(`${svc.url}/get_token`, {
        method: "POST",
        body: body(server, token, `@alice:${server}`),
      })
        .then(async (r) => (await r.body?.cancel(), r.status));
    assert.deepEqual([
      await send("good"),
      await send("good"),
      await send("bad"),
      await send("good"),
    ], [
      200,
      200,
      401,
      200,
    ]);
    assert.equal(await send("good"), 429);
    await (await fetch(`${svc.url}/nowhere`)).body?.cancel();
    // The service port does not serve metrics; the metrics port does.
    assert.equal(
      await fetch(`${svc.url}/metrics`).then(async (r) => (await r.body?.cancel(), r.status)),
      404,
    );
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    for (
      const line of [
        'lk_jwt_http_requests_total{route="/get_token",status="200"} 3',
        'lk_jwt_http_requests_total{route="/get_token",status="401"} 1',
        'lk_jwt_http_requests_total{route="/get_token",status="429"} 1',
        'lk_jwt_http_requests_total{route="other",status="404"} 2',
        'lk_jwt_openid_verifications_total{outcome="ok"} 3',
        'lk_jwt_openid_verifications_total{outcome="unknown_token"} 1',
        'lk_jwt_openid_cache_total{result="hit"} 2',
        'lk_jwt_openid_cache_total{result="miss"} 2',
        'lk_jwt_livekit_requests_total{method="CreateRoom",outcome="ok"} 1',
        'lk_jwt_rate_limited_total{bucket="ip"} 1',
        'lk_jwt_build_info{version="0.1.0"} 1',
      ]
    ) {
      assert.ok(text.includes(line), `missing ${line}\n${text}`);
    }
    assert.match(
      text,
      /lk_jwt_http_request_duration_seconds_bucket\{route="\/get_token",le="\+Inf"\} 5/,
    );
    assert.match(text, /lk_jwt_process_resident_memory_bytes \d+/);
    assert.match(text, /# TYPE lk_jwt_delegation_jobs gauge/);
  } finally {
    await svc.stop();
    await hs.close();
    await sfu.close();
  }
});

Deno.test("process: a replayed token is verified once; 50 concurrent identical requests share one call", async () => {
  const sfu = startFakeSfu();
  const hs = await startFakeHomeserver({ tls: true });
  const server = `localhost:${hs.port}`;
  hs.setUser("tok", `@alice:${server}`);
  hs.setUserinfo({ status: 200, body: { sub: `@alice:${server}` }, delayMs: 300 });
  const svc = await spawnService({
    env: {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: server,
      SSL_CERT_FILE: hs.ca!.caCertPath,
      LIVEKIT_RATE_LIMIT_USER_PER_SECOND: "0",
    },
  });
  try {
    const statuses = await Promise.all(
      Array.from(
        { length: 50 },
        () =>
          fetch(`${svc.url}/get_token`, {
            method: "POST",
            body: body(server, "tok", `@alice:${server}`),
          })
            .then(async (r) => (await r.body?.cancel(), r.status)),
      ),
    );
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(hs.count(USERINFO), 1);
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${svc.url}/get_token`, {
        method: "POST",
        body: body(server, "tok", `@alice:${server}`),
      });
      await r.body?.cancel();
    }
    assert.equal(hs.count(USERINFO), 1);
    assert.equal(sfu.calls.filter((c) => c.method === "CreateRoom").length, 1);
  } finally {
    await svc.stop();
    await hs.close();
    await sfu.close();
  }
});

Deno.test("process: LIVEKIT_FEDERATION_URL_OVERRIDES replaces discovery", async () => {
  const sfu = startFakeSfu();
  const internal = await startFakeHomeserver({ users: { tok: "@alice:example.com" } });
  const svc = await spawnService({
    env: {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com",
      LIVEKIT_FEDERATION_URL_OVERRIDES: `example.com=${internal.url}`,
    },
  });
  try {
    const r = await fetch(`${svc.url}/get_token`, {
      method: "POST",
      body: body("example.com", "tok", "@alice:example.com"),
    });
    assert.equal(r.status, 200, await r.clone().text());
    await r.body?.cancel();
    assert.equal(internal.count(USERINFO), 1);
    assert.equal(internal.count("/.well-known/matrix/server"), 0);
  } finally {
    await svc.stop();
    await internal.close();
    await sfu.close();
  }
});

Deno.test("process: per-IP limit follows X-Forwarded-For only from trusted proxies", async () => {
  const sfu = startFakeSfu();
  const env = {
    ...baseEnv(sfu.wsUrl),
    LIVEKIT_RATE_LIMIT_IP_PER_SECOND: "0.01",
    LIVEKIT_RATE_LIMIT_IP_BURST: "1",
  };
  const statusOf = (url: string, xff: string) =>
    fetch(`${url}/get_token`, { method: "POST", body: "{}", headers: { "X-Forwarded-For": xff } })
      .then(async (r) => {
        const retry = r.headers.get("retry-after");
        const text = await r.text();
        return { status: r.status, retry, text };
      });
  const trusted = await spawnService({ env });
  try {
    // The test client connects from 127.0.0.1, a default trusted proxy.
    assert.equal((await statusOf(trusted.url, "198.51.100.1")).status, 400);
    assert.equal((await statusOf(trusted.url, "198.51.100.2")).status, 400);
    const limited = await statusOf(trusted.url, "198.51.100.1");
    assert.equal(limited.status, 429);
    assert.equal(limited.retry, "100");
    assert.match(
      limited.text,
      /^\{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":\d+\}\n$/,
    );
  } finally {
    await trusted.stop();
  }
  const untrusted = await spawnService({ env: { ...env, LIVEKIT_TRUSTED_PROXIES: "10.0.0.0/8" } });
  try {
    assert.equal((await statusOf(untrusted.url, "198.51.100.1")).status, 400);
    assert.equal((await statusOf(untrusted.url, "198.51.100.2")).status, 429);
  } finally {
    await untrusted.stop();
    await sfu.close();
  }
});

Deno.test("process: /readyz follows the SFU and Redis; /healthz stays 200", async () => {
  const sfu = startFakeSfu();
  const redis = await TestRedis.start();
  const svc = await spawnService({ env: { ...baseEnv(sfu.wsUrl), LIVEKIT_REDIS_URL: redis.url } });
  const ready = () =>
    fetch(`${svc.url}/readyz`).then(async (r) => ({ status: r.status, body: await r.json() }));
  try {
    assert.equal((await ready()).status, 200);
    await redis.stop();
    await waitFor("redis not ready", async () => (await ready()).status === 503);
    const down = await ready();
    assert.deepEqual(down.body.not_ready, ["redis"]);
    assert.equal((await fetch(`${svc.url}/healthz`)).status, 200);
    await redis.resume();
    await waitFor("redis ready again", async () => (await ready()).status === 200);
  } finally {
    await svc.stop();
    await redis.dispose();
    await sfu.close();
  }
  // The SFU going away and coming back flips readiness.
  const port = freePort();
  let sfu2 = startFakeSfu({ port });
  const svc3 = await spawnService({ env: baseEnv(`ws://127.0.0.1:${port}`) });
  const ready3 = () =>
    fetch(`${svc3.url}/readyz`).then(async (r) => (await r.body?.cancel(), r.status));
  try {
    assert.equal(await ready3(), 200);
    await sfu2.close();
    await waitFor("SFU not ready", async () => (await ready3()) === 503);
    sfu2 = startFakeSfu({ port });
    await waitFor("SFU ready again", async () => (await ready3()) === 200);
  } finally {
    await svc3.stop();
    await sfu2.close();
  }
  // An SFU that refuses our key makes the service not ready.
  const wrong = startFakeSfu({ secret: "another-secret-another-secret-another" });
  const svc2 = await spawnService({ env: baseEnv(wrong.wsUrl) });
  try {
    const res = await fetch(`${svc2.url}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual((await res.json()).not_ready, ["livekit"]);
  } finally {
    await svc2.stop();
    await wrong.close();
  }
});

Deno.test("process: LIVEKIT_LOG_FORMAT=json writes one JSON object per line", async () => {
  const sfu = startFakeSfu();
  const svc = await spawnService({
    env: {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_LOG_FORMAT: "json",
      LIVEKIT_JWT_BIND: `127.0.0.1:${freePort()}`,
    },
  });
  try {
    const r = await fetch(`${svc.url}/get_token`, { method: "POST", body: "{" });
    await r.body?.cancel();
    await svc.waitForLog(/"path":"\/get_token"/);
  } finally {
    await svc.stop();
    await sfu.close();
  }
  const lines = svc.logs().split("\n").filter((l) => l.startsWith("{"));
  assert.ok(lines.length > 3);
  for (const line of lines) {
    const obj = JSON.parse(line);
    assert.equal(typeof obj.time, "string");
    assert.ok(["debug", "info", "warn", "error"].includes(obj.level));
    assert.equal(typeof obj.msg, "string");
  }
  const access = lines.map((l) => JSON.parse(l)).find((o) => o.path === "/get_token");
  assert.equal(access.status, 400);
  assert.match(access.request_id, /^[0-9a-f]{16}$/);
});
