/**
 * Tests of `lk-jwt-service check-config` as a process through the launcher
 * (configuration.md §1 "Extra commands"; lib/cli/check_config.ts): a good setup, broken setups,
 * `--offline`, configuration errors and usage errors. The individual verdicts are in
 * check_config_verdicts_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { TestRedis } from "../fakes/redis.ts";
import { startFakeSfu } from "../fakes/sfu.ts";
import { baseEnv, freePort, spawnService } from "../support/service.ts";
import { findLine, SECRET, versionsRoute } from "./_check_config_helpers.ts";

/** Lines of the process output, without the launcher's own notes. */
function lines(output: string): string[] {
  return output.split("\n").filter((l) => l !== "" && !l.startsWith("lk-jwt-service: "));
}

async function runProcess(env: Record<string, string>, args: string[] = ["check-config"]) {
  const proc = await spawnService({ env, args, waitReady: false });
  const status = await proc.status;
  return { code: status.code, lines: lines(proc.logs()), text: proc.logs() };
}

Deno.test("check-config process: a good setup passes every check and exits 0", async () => {
  const sfu = startFakeSfu();
  const hs = await startFakeHomeserver({ tls: true, extraRoutes: versionsRoute(true) });
  const redis = await TestRedis.start();
  try {
    const name = `localhost:${hs.port}`;
    hs.setWellKnownClient({ body: { "m.homeserver": { base_url: `https://${name}` } } });
    const out = await runProcess({
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: name,
      SSL_CERT_FILE: hs.ca!.caCertPath,
      LIVEKIT_REDIS_URL: redis.url,
      LIVEKIT_JWT_BIND: `127.0.0.1:${freePort()}`,
    });
    assert.equal(out.code, 0, out.text);
    assert.deepEqual(
      out.lines.filter((l) => !l.startsWith("PASS ") && !l.startsWith("check-config: ")),
      [],
    );
    findLine(out.lines, "PASS configuration: LiveKit key from LIVEKIT_KEY");
    findLine(out.lines, `PASS LiveKit API ${sfu.url}/twirp: key "devkey" accepted`);
    findLine(out.lines, `PASS homeserver ${name} federation: userinfo answers`);
    findLine(out.lines, `PASS homeserver ${name} client-server API: https://${name}`);
    findLine(out.lines, `PASS Redis 127.0.0.1:${redis.port}: answered PING`);
    findLine(out.lines, "PASS LIVEKIT_JWT_BIND");
    assert.equal(out.lines.at(-1), "check-config: 6 passed, 0 failed");
    // The probe is a read-only GetParticipant, authenticated with the configured key.
    assert.deepEqual(sfu.calls.map((c) => c.method), ["GetParticipant"]);
    assert.equal(sfu.calls[0]!.grant?.roomAdmin, true);
    assert.equal(sfu.rooms.size, 0);
    assert.equal(hs.count("/_matrix/federation/v1/openid/userinfo"), 1);
    assert.ok(!out.text.includes(SECRET), "the secret is printed");
  } finally {
    await redis.dispose();
    await hs.close();
    await sfu.close();
  }
});

Deno.test("check-config process: a broken setup fails each check with its fix and exits 1", async () => {
  const sfu = startFakeSfu({ secret: "another-secret-another-secret-another" });
  const hs = await startFakeHomeserver({
    tls: true,
    extraRoutes: versionsRoute(false),
    userinfo: { status: 404, body: { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" } },
  });
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const name = `localhost:${hs.port}`;
    const redisPort = freePort();
    const out = await runProcess({
      ...baseEnv(sfu.wsUrl),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: name,
      LIVEKIT_CS_API_URL_OVERRIDES: `${name}=https://${name}`,
      SSL_CERT_FILE: hs.ca!.caCertPath,
      LIVEKIT_REDIS_URL: `redis://:redis-password@127.0.0.1:${redisPort}`,
      LIVEKIT_JWT_BIND: `127.0.0.1:${blocker.addr.port}`,
    });
    assert.equal(out.code, 1, out.text);
    assert.match(
      findLine(out.lines, "FAIL LiveKit API"),
      /LiveKit API answered 401 unauthenticated.* — fix: LIVEKIT_KEY\/LIVEKIT_SECRET must match a `keys:` entry of livekit\.yaml/,
    );
    assert.match(
      findLine(out.lines, `FAIL homeserver ${name} federation`),
      /answered 404 M_UNRECOGNIZED — fix: enable the federation \(or openid\) resource/,
    );
    assert.match(
      findLine(out.lines, `FAIL homeserver ${name} client-server API`),
      /LIVEKIT_CS_API_URL_OVERRIDES\) does not advertise unstable feature org\.matrix\.msc4140 .* — fix: .*max_event_delay_duration/,
    );
    assert.match(
      findLine(out.lines, `FAIL Redis 127.0.0.1:${redisPort}`),
      /cannot connect: .*ECONNREFUSED.* — fix: start Redis or make 127\.0\.0\.1:\d+ reachable/,
    );
    assert.match(
      findLine(out.lines, "FAIL LIVEKIT_JWT_BIND"),
      new RegExp(`cannot listen: .* — fix: another process listens on port ${blocker.addr.port}`),
    );
    assert.equal(out.lines.at(-1), "check-config: 1 passed, 5 failed");
    for (const secret of [SECRET, "redis-password"]) {
      assert.ok(!out.text.includes(secret), `${secret} is printed`);
    }
  } finally {
    blocker.close();
    await hs.close();
    await sfu.close();
  }
});

Deno.test("check-config process: a dead SFU URL and an untrusted homeserver certificate fail", async () => {
  const hs = await startFakeHomeserver({ tls: true });
  try {
    const name = `localhost:${hs.port}`;
    const out = await runProcess({
      ...baseEnv(`wss://127.0.0.1:${freePort()}/livekit/sfu`),
      LIVEKIT_FULL_ACCESS_HOMESERVERS: name,
    });
    assert.equal(out.code, 1, out.text);
    assert.match(
      findLine(out.lines, "FAIL LiveKit API https://127.0.0.1:"),
      /cannot reach the API: .* — fix: check that LiveKit .* listens at 127\.0\.0\.1:\d+/,
    );
    assert.match(
      findLine(out.lines, `FAIL homeserver ${name} federation`),
      /userinfo unreachable: .*(certificate|UnknownIssuer).* — fix: the certificate served at .* is not trusted: add its CA with SSL_CERT_FILE=<ca\.pem>/i,
    );
    assert.match(
      findLine(out.lines, `FAIL homeserver ${name} client-server API`),
      /discovery failed: .* — fix: serve https:\/\/localhost:\d+\/\.well-known\/matrix\/client/,
    );
    assert.equal(hs.count("/_matrix/federation/v1/openid/userinfo"), 0);
  } finally {
    await hs.close();
  }
});

Deno.test("check-config process: --offline only validates and reads the key files", async () => {
  const sfu = startFakeSfu();
  const hs = await startFakeHomeserver({ tls: true });
  const dir = await Deno.makeTempDir({ prefix: "lk-jwt-check-" });
  try {
    const keyFile = `${dir}/keys`;
    await Deno.writeTextFile(keyFile, `devkey: ${SECRET}\n`);
    const env = {
      LIVEKIT_URL: sfu.wsUrl,
      LIVEKIT_KEY_FILE: keyFile,
      LIVEKIT_FULL_ACCESS_HOMESERVERS: `localhost:${hs.port}`,
      LIVEKIT_REDIS_URL: `redis://127.0.0.1:${freePort()}`,
      LIVEKIT_JWT_BIND: "127.0.0.1:0",
    };
    const good = await runProcess(env, ["check-config", "--offline"]);
    assert.equal(good.code, 0, good.text);
    findLine(good.lines, `PASS configuration: LiveKit key from file "${keyFile}"`);
    assert.match(good.lines.at(-1)!, /not checked \(--offline\)$/);
    assert.equal(sfu.calls.length, 0);
    assert.equal(hs.counts.requests, 0);
    assert.ok(!good.text.includes(SECRET));

    const missing = await runProcess(
      { ...env, LIVEKIT_KEY_FILE: `${dir}/missing` },
      ["check-config", "--offline"],
    );
    assert.equal(missing.code, 1, missing.text);
    assert.match(
      missing.lines[0]!,
      new RegExp(`^failed reading LIVEKIT_KEY_FILE "${dir}/missing": `),
    );
    assert.ok(!missing.lines.some((l) => l.startsWith("PASS")));
  } finally {
    await Deno.remove(dir, { recursive: true });
    await hs.close();
    await sfu.close();
  }
});

Deno.test("check-config process: configuration errors are printed exactly, unknown arguments exit 2", async () => {
  const bad = await runProcess({
    LIVEKIT_URL: "ftp://x",
    LIVEKIT_JWT_BIND: ":1",
    LIVEKIT_JWT_PORT: "2",
  });
  assert.equal(bad.code, 1);
  assert.deepEqual(bad.lines, [
    "LIVEKIT_KEY* / LIVEKIT_SECRET* and LIVEKIT_URL must be set",
    "LIVEKIT_KEY is not set: the LiveKit API key (or set LIVEKIT_KEY_FROM_FILE or LIVEKIT_KEY_FILE)",
    "LIVEKIT_SECRET is not set: the LiveKit API secret (or set LIVEKIT_SECRET_FROM_FILE or LIVEKIT_KEY_FILE)",
    'LIVEKIT_URL must be a ws://, wss://, http:// or https:// URL, got "ftp://x"',
    "LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT must not be set together",
    "check-config: 5 configuration problem(s)",
  ]);
  const usage = await runProcess(baseEnv("ws://127.0.0.1:7880"), ["check-config", "--online"]);
  assert.equal(usage.code, 2);
  assert.equal(
    usage.text,
    'lk-jwt-service: unknown flag --online; did you mean --offline? (run "lk-jwt-service --help" for the commands and flags)\n',
  );
});

Deno.test("check-config process: next to a running service the listen check passes and says so", async () => {
  const sfu = startFakeSfu();
  const port = freePort();
  const env = { ...baseEnv(sfu.wsUrl), LIVEKIT_JWT_BIND: `127.0.0.1:${port}` };
  const svc = await spawnService({ env });
  try {
    const out = await runProcess(env);
    findLine(
      out.lines,
      `PASS LIVEKIT_JWT_BIND "127.0.0.1:${port}": in use by a running instance of this service ` +
        `(GET http://127.0.0.1:${port}/healthz answered 200)`,
    );
    assert.equal(out.code, 0, out.text);
  } finally {
    await svc.stop();
    await sfu.close();
  }
});

Deno.test("check-config process: an address held by something else fails with the probe's answer", async () => {
  const sfu = startFakeSfu();
  // Something that is not this service: /healthz answers 404.
  const other = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("not here", { status: 404 }),
  );
  try {
    const port = other.addr.port;
    // `:port` listens on every interface: the probe still goes to 127.0.0.1 (configuration.md §8).
    const out = await runProcess({ ...baseEnv(sfu.wsUrl), LIVEKIT_JWT_BIND: `:${port}` });
    assert.equal(out.code, 1);
    const line = findLine(out.lines, `FAIL LIVEKIT_JWT_BIND ":${port}": cannot listen: `);
    assert.match(
      line,
      new RegExp(
        `not a running instance of this service \\(GET http://127\\.0\\.0\\.1:${port}/healthz ` +
          `answered 404\\) — fix: another process listens on port ${port}`,
      ),
    );
  } finally {
    await other.shutdown();
    await sfu.close();
  }
});
