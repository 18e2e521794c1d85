/**
 * In-process tests of the individual `check-config` verdicts (lib/cli/check_livekit.ts,
 * check_homeserver.ts, check_local.ts, check_result.ts): routing and proxy failures of the
 * LiveKit API, redirects, the 10 s deadline, homeserver userinfo answers, federation and
 * client-server API overrides, MSC4140, Redis authentication, listen addresses.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runCheckConfig } from "../../lib/cli/check_config.ts";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { TestRedis } from "../fakes/redis.ts";
import { startFakeSfu } from "../fakes/sfu.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { baseEnv } from "../support/service.ts";
import { findLine, versionsRoute } from "./_check_config_helpers.ts";

interface Run {
  code: number;
  out: string[];
  err: string[];
}

async function check(
  env: Record<string, string>,
  options: { clock?: ManualClock; fetch?: typeof fetch; args?: string[] } = {},
): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCheckConfig(options.args ?? [], (name) => env[name], {
    write: (line, stream) => (stream === "stdout" ? out : err).push(line),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  return { code, out, err };
}

function sfuOnly(url: string): Record<string, string> {
  return { ...baseEnv(url), LIVEKIT_FULL_ACCESS_HOMESERVERS: "*" };
}

Deno.test("check-config: an unrouted path prefix and a failing proxy name <prefix>/twirp/", async () => {
  const sfu = startFakeSfu();
  try {
    const prefixed = await check(sfuOnly(`${sfu.wsUrl}/livekit/sfu`));
    assert.equal(prefixed.code, 1);
    assert.match(
      findLine(prefixed.out, "FAIL LiveKit API"),
      /answered 404 bad_route .*no LiveKit Twirp route there — fix: route \/livekit\/sfu\/twirp\/ on 127\.0\.0\.1:\d+ to LiveKit's HTTP port/,
    );
    sfu.failNext = [{ status: 502, body: "Bad Gateway", contentType: "text/plain" }];
    const proxy = await check(sfuOnly(sfu.wsUrl));
    assert.match(
      findLine(proxy.out, "FAIL LiveKit API"),
      /answered 502: the reverse proxy could not reach LiveKit — fix: route \/twirp\/ on/,
    );
    // Without the wildcard warning banner lines, only the WARN notes remain.
    assert.ok(
      proxy.out.some((l) =>
        l.startsWith('WARN !!! WARNING: LIVEKIT_FULL_ACCESS_HOMESERVERS is "*"')
      ),
    );
    assert.ok(proxy.out.includes(
      "WARN no homeserver is listed by name in LIVEKIT_FULL_ACCESS_HOMESERVERS: homeserver checks skipped",
    ));
  } finally {
    await sfu.close();
  }
  const routed = startFakeSfu({ prefix: "/livekit/sfu" });
  try {
    const run = await check(sfuOnly(routed.wsUrl));
    assert.equal(run.code, 0, run.out.join("\n"));
    findLine(run.out, `PASS LiveKit API ${routed.url}/twirp: key "devkey" accepted`);
    assert.equal(routed.calls[0]?.path, "/livekit/sfu/twirp/livekit.RoomService/GetParticipant");
  } finally {
    await routed.close();
  }
});

Deno.test("check-config: a redirect from the SFU URL is a failure with the final URL", async () => {
  const fakeFetch: typeof fetch = () =>
    Promise.resolve(
      new Response(null, { status: 308, headers: { location: "https://sfu.example.com/twirp/x" } }),
    );
  const run = await check(sfuOnly("ws://sfu.example.com"), { fetch: fakeFetch });
  assert.match(
    findLine(run.out, "FAIL LiveKit API http://sfu.example.com/twirp"),
    /answered 308 redirecting to https:\/\/sfu\.example\.com\/twirp\/x — fix: set LIVEKIT_URL to the final address/,
  );
});

Deno.test("check-config: a check that does not answer fails after its 10 s deadline", async () => {
  const clock = new ManualClock();
  let aborted = false;
  const hanging: typeof fetch = (_input, init) =>
    new Promise((_, reject) => {
      init?.signal?.addEventListener("abort", () => {
        aborted = true;
        reject(init.signal?.reason);
      }, { once: true });
    });
  const running = check(sfuOnly("wss://sfu.example.com"), { clock, fetch: hanging });
  await clock.advance(9_999);
  await clock.advance(1);
  const run = await running;
  assert.equal(run.code, 1);
  assert.match(
    findLine(run.out, "FAIL LiveKit API https://sfu.example.com/twirp"),
    /: no answer within 10 s — fix: check that LiveKit/,
  );
  assert.ok(aborted, "the request was not aborted");
});

Deno.test("check-config: userinfo answers other than a Matrix 401 fail with a fix", async () => {
  const hs = await startFakeHomeserver({ tls: true, extraRoutes: versionsRoute(true) });
  const sfu = startFakeSfu();
  try {
    const name = `localhost:${hs.port}`;
    const env = {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: name,
      LIVEKIT_CS_API_URL_OVERRIDES: `${name}=https://${name}/`,
      SSL_CERT_FILE: hs.ca!.caCertPath,
    };
    const cases: Array<[unknown, RegExp]> = [
      [
        { status: 403, body: { errcode: "M_FORBIDDEN", error: "Federation disabled" } },
        /answered 403 M_FORBIDDEN — fix: enable the federation \(or openid\) resource/,
      ],
      [{ status: 200, body: { sub: `@alice:${name}` } }, /accepted a made-up access token/],
      [
        { status: 401, body: "Authorization Required" },
        /answered 401 without a Matrix error — fix: let \/_matrix\/federation\/v1\/openid\/userinfo through/,
      ],
      [
        { status: 500, body: { errcode: "M_UNKNOWN" } },
        /answered 500 M_UNKNOWN — fix: check the homeserver/,
      ],
    ];
    for (const [route, expected] of cases) {
      hs.setUserinfo(route as Parameters<typeof hs.setUserinfo>[0]);
      const run = await check(env);
      assert.equal(run.code, 1);
      assert.match(findLine(run.out, `FAIL homeserver ${name} federation`), expected);
      findLine(
        run.out,
        `PASS homeserver ${name} client-server API: https://${name} (LIVEKIT_CS_API_URL_OVERRIDES) advertises org.matrix.msc4140`,
      );
    }
  } finally {
    await sfu.close();
    await hs.close();
  }
});

Deno.test("check-config: LIVEKIT_FEDERATION_URL_OVERRIDES is what the federation check uses", async () => {
  const hs = await startFakeHomeserver({ extraRoutes: versionsRoute(true) });
  const sfu = startFakeSfu();
  try {
    const env = {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.invalid",
      LIVEKIT_FEDERATION_URL_OVERRIDES: `example.invalid=${hs.url}`,
      LIVEKIT_CS_API_URL_OVERRIDES: `example.invalid=${hs.url}`,
    };
    const run = await check(env);
    assert.equal(run.code, 0, run.out.join("\n"));
    findLine(
      run.out,
      `PASS homeserver example.invalid federation: userinfo answers at ${hs.url} (LIVEKIT_FEDERATION_URL_OVERRIDES) (401 M_UNKNOWN_TOKEN for a made-up token)`,
    );
    assert.equal(hs.count("/_matrix/federation/v1/openid/userinfo"), 1);
  } finally {
    await sfu.close();
    await hs.close();
  }
});

Deno.test("check-config: client-server API discovery and /versions failures", async () => {
  const hs = await startFakeHomeserver({ tls: true });
  const sfu = startFakeSfu();
  try {
    const name = `localhost:${hs.port}`;
    const env = {
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: name,
      SSL_CERT_FILE: hs.ca!.caCertPath,
    };
    const none = await check(env);
    assert.match(
      findLine(none.out, `FAIL homeserver ${name} client-server API`),
      new RegExp(
        `discovery failed: https://${name}/\\.well-known/matrix/client: no record \\(404\\) — fix: serve https://${name}/\\.well-known/matrix/client with .*or set LIVEKIT_CS_API_URL_OVERRIDES=${name}=`,
      ),
    );
    hs.setWellKnownClient({ body: { "m.homeserver": { base_url: `https://${name}/prefix` } } });
    const notFound = await check(env);
    assert.match(
      findLine(notFound.out, `FAIL homeserver ${name} client-server API`),
      /GET https:\/\/localhost:\d+\/prefix\/_matrix\/client\/versions answered 404 — fix: the base URL must be the client-server API root/,
    );
    findLine(notFound.out, `PASS homeserver ${name} federation`);
  } finally {
    await sfu.close();
    await hs.close();
  }
});

Deno.test("check-config: Redis asking for a password fails with the password fix", async () => {
  const redis = await TestRedis.start({ password: "s3cret-pass" });
  try {
    const run = await check({
      ...sfuOnly("ws://127.0.0.1:7880"),
      LIVEKIT_REDIS_URL: `redis://127.0.0.1:${redis.port}`,
    }, { fetch: () => Promise.resolve(Response.json({ code: "not_found" }, { status: 404 })) });
    assert.match(
      findLine(run.out, `FAIL Redis 127.0.0.1:${redis.port}`),
      /NOAUTH.* — fix: put the Redis user and password into LIVEKIT_REDIS_URL/,
    );
    const good = await check({
      ...sfuOnly("ws://127.0.0.1:7880"),
      LIVEKIT_REDIS_URL: redis.url,
    }, { fetch: () => Promise.resolve(Response.json({ code: "not_found" }, { status: 404 })) });
    assert.equal(good.code, 0, good.out.join("\n"));
    assert.ok(!good.out.join("\n").includes("s3cret-pass"));
  } finally {
    await redis.dispose();
  }
});

Deno.test("check-config: a listed name that is not a server name fails without network", async () => {
  const run = await check(
    { ...baseEnv("ws://127.0.0.1:7880"), LIVEKIT_FULL_ACCESS_HOMESERVERS: "https://example.com" },
    { fetch: () => Promise.resolve(Response.json({ code: "not_found" }, { status: 404 })) },
  );
  assert.equal(run.code, 1);
  assert.match(
    findLine(run.out, 'FAIL homeserver "https://example.com"'),
    /not a valid server name .* — fix: list server names in LIVEKIT_FULL_ACCESS_HOMESERVERS exactly as they appear in user IDs/,
  );
  assert.equal(run.out.filter((l) => l.startsWith("FAIL")).length, 1);
});

Deno.test("check-config: LIVEKIT_METRICS_BIND is checked like the main listen address", async () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const run = await check(
      { ...sfuOnly("ws://127.0.0.1:7880"), LIVEKIT_METRICS_BIND: `127.0.0.1:${blocker.addr.port}` },
      { fetch: () => Promise.resolve(Response.json({ code: "not_found" }, { status: 404 })) },
    );
    assert.equal(run.code, 1);
    findLine(run.out, 'PASS LIVEKIT_JWT_BIND "127.0.0.1:0": address is free');
    assert.match(
      findLine(run.out, `FAIL LIVEKIT_METRICS_BIND "127.0.0.1:${blocker.addr.port}"`),
      /— fix: another process listens on port \d+ .*choose another LIVEKIT_METRICS_BIND/,
    );
  } finally {
    blocker.close();
  }
});

Deno.test("check-config: a Redis URL the connection code cannot use is a configuration error", async () => {
  const run = await check(
    { ...sfuOnly("ws://127.0.0.1:7880"), LIVEKIT_REDIS_URL: "unix:///" },
    { fetch: () => Promise.resolve(Response.json({ code: "not_found" }, { status: 404 })) },
  );
  assert.equal(run.code, 1);
  assert.deepEqual(run.err, [
    'Could not connect Redis store: store: invalid Redis URL "unix:///": missing socket path',
  ]);
});
