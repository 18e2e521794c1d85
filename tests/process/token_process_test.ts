/**
 * The service as a process, started through the launcher with the permissions it derives, against
 * a fake TLS homeserver (throwaway CA via `SSL_CERT_FILE`) and a fake SFU on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { TokenVerifier } from "livekit-server-sdk";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { startFakeSfu } from "../fakes/sfu.ts";
import { baseEnv, spawnService } from "../support/service.ts";
import { roomAlias } from "../../lib/livekit/names.ts";

const SECRET = "devsecret-devsecret-devsecret-devsecret";

async function stack(extraEnv: (hsPort: number) => Record<string, string> = () => ({})) {
  const sfu = startFakeSfu();
  const hs = await startFakeHomeserver({ tls: true });
  const full = `localhost:${hs.port}`;
  const restricted = `127.0.0.1:${hs.port}`;
  hs.setUser("alice-token", `@alice:${full}`);
  hs.setUser("bob-token", `@bob:${restricted}`);
  const svc = await spawnService({
    env: {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: full,
      SSL_CERT_FILE: hs.ca!.caCertPath,
      ...extraEnv(hs.port),
    },
  });
  return {
    sfu,
    hs,
    svc,
    full,
    restricted,
    async close() {
      await svc.stop();
      await hs.close();
      await sfu.close();
    },
  };
}

function getToken(
  server: string,
  token: string,
  user: string,
  extra: Record<string, unknown> = {},
) {
  return {
    room_id: "!room:example.com",
    slot_id: "m.call#ROOM",
    openid_token: {
      access_token: token,
      token_type: "Bearer",
      matrix_server_name: server,
      expires_in: 3600,
      future: { x: 1 },
    },
    member: { id: "member-1", claimed_user_id: user, claimed_device_id: "DEVICE", extra: [1] },
    unknown_top_level: "ignored",
    ...extra,
  };
}

/** Polls until the homeserver has received a userinfo request (it is now in flight). */
async function untilUserinfoArrived(hs: { count(path: string): number }): Promise<void> {
  for (let i = 0; i < 200 && hs.count("/_matrix/federation/v1/openid/userinfo") === 0; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function post(url: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
}

Deno.test("process: full-access user gets a verifiable JWT and the room is created", async () => {
  const s = await stack();
  try {
    const res = await post(
      `${s.svc.url}/get_token`,
      getToken(s.full, "alice-token", `@alice:${s.full}`),
    );
    assert.equal(res.status, 200, await res.clone().text());
    const { url, jwt } = await res.json();
    assert.equal(url, s.sfu.wsUrl);
    const claims = await new TokenVerifier("devkey", SECRET).verify(jwt);
    const room = roomAlias("!room:example.com", "m.call#ROOM");
    assert.equal(claims.video?.room, room);
    const created = s.sfu.calls.filter((c) => c.method === "CreateRoom");
    assert.equal(created.length, 1);
    assert.equal(created[0]!.room, room);
    // Legacy body on /sfu/get, unknown fields ignored, same room.
    const legacy = await post(`${s.svc.url}/sfu/get`, {
      room: "!room:example.com",
      openid_token: { access_token: "alice-token", matrix_server_name: s.full },
      device_id: "DEV2",
      something_new: true,
    });
    assert.equal(legacy.status, 200);
    const p = JSON.parse(
      Buffer.from((await legacy.json()).jwt.split(".")[1], "base64url").toString(),
    );
    assert.equal(p.sub, `@alice:${s.full}:DEV2`);
    assert.equal(p.video.room, room);
  } finally {
    await s.close();
  }
});

Deno.test("process: restricted user gets a token but no room; SSRF guard needs LIVEKIT_OUTBOUND_ALLOW", async () => {
  const s = await stack(() => ({ LIVEKIT_OUTBOUND_ALLOW: "127.0.0.1" }));
  try {
    const res = await post(
      `${s.svc.url}/get_token`,
      getToken(s.restricted, "bob-token", `@bob:${s.restricted}`),
    );
    assert.equal(res.status, 200, await res.clone().text());
    await res.body?.cancel();
    assert.equal(s.sfu.calls.filter((c) => c.method === "CreateRoom").length, 0);
    const delegate = await post(
      `${s.svc.url}/get_token`,
      getToken(s.restricted, "bob-token", `@bob:${s.restricted}`, {
        delay_id: "syd_x",
        delay_timeout: 1000,
      }),
    );
    assert.equal(delegate.status, 400);
    assert.equal(
      (await delegate.json()).error,
      "Delegation of delayed events is only supported for full access users",
    );
  } finally {
    await s.close();
  }
  const strict = await stack();
  try {
    const res = await post(
      `${strict.svc.url}/get_token`,
      getToken(strict.restricted, "bob-token", `@bob:${strict.restricted}`),
    );
    assert.equal(res.status, 401);
    await res.body?.cancel();
    await strict.svc.waitForLog(/destination not allowed/);
    assert.equal(strict.hs.count("/_matrix/federation/v1/openid/userinfo"), 0);
  } finally {
    await strict.close();
  }
});

Deno.test("process: forged token and claimed-user mismatch answer 401", async () => {
  const s = await stack();
  try {
    const forged = await post(
      `${s.svc.url}/get_token`,
      getToken(s.full, "forged", `@alice:${s.full}`),
    );
    assert.equal(forged.status, 401);
    assert.equal(
      await forged.text(),
      '{"errcode":"M_UNAUTHORIZED","error":"The request could not be authorised."}\n',
    );
    const mismatch = await post(
      `${s.svc.url}/get_token`,
      getToken(s.full, "alice-token", `@mallory:${s.full}`),
    );
    assert.equal(mismatch.status, 401);
    await mismatch.body?.cancel();
    await s.svc.waitForLog(/answered 401/);
    await s.svc.waitForLog(/claimed user mismatch/);
  } finally {
    await s.close();
  }
});

Deno.test("process: TLS is verified unless the exact skip-verify value is set (D11)", async () => {
  for (
    const [skip, expected] of [["", 401], ["true", 401], [
      "YES_I_KNOW_WHAT_I_AM_DOING",
      200,
    ]] as const
  ) {
    const s = await stack(() => ({ SSL_CERT_FILE: "", LIVEKIT_INSECURE_SKIP_VERIFY_TLS: skip }));
    // An empty SSL_CERT_FILE is what an operator gets from `SSL_CERT_FILE=` in an env file.
    try {
      const res = await post(
        `${s.svc.url}/get_token`,
        getToken(s.full, "alice-token", `@alice:${s.full}`),
      );
      assert.equal(
        res.status,
        expected,
        `skip=${skip}: ${await res.clone().text()}\n${s.svc.logs()}`,
      );
      await res.body?.cancel();
      if (expected === 401) {
        await s.svc.waitForLog(/OpenID verification failed.*(tls|certificate|UnknownIssuer)/i);
        assert.equal(s.hs.count("/_matrix/federation/v1/openid/userinfo"), 0);
      } else {
        await s.svc.waitForLog(
          /!!! TLS certificates of homeservers, the LiveKit API and Redis are NOT verified\. !!!/,
        );
      }
    } finally {
      await s.close();
    }
  }
});

Deno.test("process: 20 requests reuse one TLS connection to the homeserver", async () => {
  const s = await stack();
  try {
    for (let i = 0; i < 20; i++) {
      s.hs.setUser(`tok${i}`, `@user${i}:${s.full}`);
      const res = await post(`${s.svc.url}/sfu/get`, {
        room: `!room${i}:example.com`,
        openid_token: { access_token: `tok${i}`, matrix_server_name: s.full },
        device_id: "D",
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    assert.equal(s.hs.count("/_matrix/federation/v1/openid/userinfo"), 20);
    assert.equal(s.hs.counts.connections, 1);
  } finally {
    await s.close();
  }
});

Deno.test("process: oversized bodies get a readable 413", async () => {
  const s = await stack();
  try {
    const big = JSON.stringify({ room: "x", pad: "y".repeat(200_000) });
    const res = await fetch(`${s.svc.url}/sfu/get`, { method: "POST", body: big });
    assert.equal(res.status, 413);
    assert.equal(await res.text(), '{"errcode":"M_TOO_LARGE","error":"Request body too large"}\n');
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 100; i++) c.enqueue(new Uint8Array(1024).fill(32));
        c.close();
      },
    });
    const res2 = await fetch(`${s.svc.url}/get_token`, { method: "POST", body: chunked });
    assert.equal(res2.status, 413);
    await res2.body?.cancel();
  } finally {
    await s.close();
  }
});

Deno.test("process: slow and idle clients do not hold up other requests", async () => {
  const s = await stack();
  const conns: Deno.TcpConn[] = [];
  try {
    const enc = new TextEncoder();
    for (let i = 0; i < 20; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: s.svc.port });
      conns.push(c);
      // Half send a partial header, half a partial body.
      await c.write(
        enc.encode(
          i % 2 === 0
            ? "POST /get_token HTTP/1.1\r\nHost: x\r\n"
            : 'POST /get_token HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"room_id":',
        ),
      );
    }
    for (let i = 0; i < 10; i++) {
      const res = await post(
        `${s.svc.url}/get_token`,
        getToken(s.full, "alice-token", `@alice:${s.full}`),
      );
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal((await fetch(`${s.svc.url}/healthz`)).status, 200);
    }
  } finally {
    for (const c of conns) c.close();
    await s.close();
  }
});

Deno.test("process: SIGTERM lets an in-flight request finish, refuses new ones, exits 0", async () => {
  const s = await stack();
  try {
    s.hs.setUserinfo({ status: 200, body: { sub: `@alice:${s.full}` }, delayMs: 1500 });
    const inflight = post(
      `${s.svc.url}/get_token`,
      getToken(s.full, "alice-token", `@alice:${s.full}`),
    );
    await untilUserinfoArrived(s.hs);
    const stopped = s.svc.stop("SIGTERM");
    const res = await inflight;
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const status = await stopped;
    assert.equal(status.code, 0);
    await assert.rejects(() => fetch(`${s.svc.url}/healthz`));
  } finally {
    await s.close();
  }
});

Deno.test("process: configuration errors are printed exactly, exit status 1", async () => {
  const svc = await spawnService({
    env: { LIVEKIT_URL: "ftp://x", LIVEKIT_JWT_BIND: ":1", LIVEKIT_JWT_PORT: "2" },
    waitReady: false,
  });
  const status = await svc.status;
  assert.equal(status.code, 1);
  assert.equal(
    // Log lines of the launcher (e.g. names that did not resolve) are not configuration errors.
    svc.logs().split("\n").filter((l) => !/^\d{4}-\d\d-\d\dT\S+ [A-Z]+ /.test(l)).join("\n"),
    [
      "LIVEKIT_KEY* / LIVEKIT_SECRET* and LIVEKIT_URL must be set",
      "LIVEKIT_KEY is not set: the LiveKit API key (or set LIVEKIT_KEY_FROM_FILE or LIVEKIT_KEY_FILE)",
      "LIVEKIT_SECRET is not set: the LiveKit API secret (or set LIVEKIT_SECRET_FROM_FILE or LIVEKIT_KEY_FILE)",
      'LIVEKIT_URL must be a ws://, wss://, http:// or https:// URL, got "ftp://x"',
      "LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT must not be set together",
      "",
    ].join("\n"),
  );
});

Deno.test("process: a port in use fails at once with the bind error", async () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (blocker.addr as Deno.NetAddr).port;
    const svc = await spawnService({
      env: { ...baseEnv("ws://127.0.0.1:1"), LIVEKIT_JWT_BIND: `127.0.0.1:${port}` },
      waitReady: false,
    });
    assert.equal((await svc.status).code, 1);
    assert.match(
      svc.logs(),
      new RegExp(`failed to bind LIVEKIT_JWT_BIND "127\\.0\\.0\\.1:${port}": `),
    );
  } finally {
    blocker.close();
  }
});

Deno.test("process: secrets never reach the log", async () => {
  const s = await stack();
  try {
    for (const token of ["alice-token", "forged-token-value"]) {
      const res = await post(
        `${s.svc.url}/get_token`,
        getToken(s.full, token, `@alice:${s.full}`, {
          delay_id: "syd_secretdelayid",
          delay_timeout: 5000,
        }),
      );
      await res.body?.cancel();
    }
  } finally {
    await s.close();
  }
  const logs = s.svc.logs();
  assert.ok(logs.includes("OpenID verification failed"));
  for (const secret of [SECRET, "alice-token", "forged-token-value", "syd_secretdelayid"]) {
    assert.ok(!logs.includes(secret), `log contains ${secret}`);
  }
});

Deno.test("process: a second signal exits at once", async () => {
  const s = await stack();
  try {
    s.hs.setUserinfo({ hang: true });
    const inflight = post(
      `${s.svc.url}/get_token`,
      getToken(s.full, "alice-token", `@alice:${s.full}`),
    )
      .catch(() => undefined);
    await untilUserinfoArrived(s.hs);
    const stopped = s.svc.stop("SIGTERM");
    await s.svc.waitForLog(/Shutting down/);
    await s.svc.stop("SIGTERM");
    // A drained exit is 0; the immediate exit of the second signal is 1.
    assert.equal((await stopped).code, 1);
    await inflight;
  } finally {
    await s.close();
  }
});

Deno.test("process: LIVEKIT_FULL_ACCESS_ONLY runs with an exact outbound host list", async () => {
  const s = await stack(() => ({
    LIVEKIT_FULL_ACCESS_ONLY: "true",
    LIVEKIT_OUTBOUND_ALLOW: "127.0.0.1",
  }));
  try {
    await s.svc.waitForLog(/permissions="net=host list /);
    const ok = await post(
      `${s.svc.url}/get_token`,
      getToken(s.full, "alice-token", `@alice:${s.full}`),
    );
    assert.equal(ok.status, 200, await ok.clone().text());
    await ok.body?.cancel();
    const other = await post(
      `${s.svc.url}/get_token`,
      getToken(s.restricted, "bob-token", `@bob:${s.restricted}`),
    );
    assert.equal(other.status, 401);
    await other.body?.cancel();
    await s.svc.waitForLog(/homeserver not served \(LIVEKIT_FULL_ACCESS_ONLY=true\)/);
    assert.equal(s.hs.count("/_matrix/federation/v1/openid/userinfo"), 1);
  } finally {
    await s.close();
  }
});
