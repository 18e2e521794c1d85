/**
 * End-to-end tests of `bin/lk-jwt-service`: the permissions a process started through it
 * really gets (denied private addresses, carved-out destinations, files, environment), `exec`
 * (same process id), configuration problems left to the service, the healthcheck for every
 * bind form that works on loopback, dispatch on the program name, an empty read-only working
 * directory, and the release (bundle) layout.
 *
 * The service itself is replaced by `tests/cli/fixtures/permission_probe.ts` through the
 * test-only `LK_JWT_ENTRY` variable; every server here listens on loopback only.
 *
 * @module
 */
import assert from "node:assert/strict";

import {
  closedPort,
  LAUNCHER,
  probe,
  run,
  unprivilegedPrefix,
  withLoopbackServer,
} from "./_launcher_helpers.ts";

Deno.test("launcher: the service cannot reach denied addresses but reaches configured ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keyFile = `${dir}/keys`;
    await Deno.writeTextFile(keyFile, "key: secret\n");
    await withLoopbackServer("127.0.0.1", () => new Response("sfu"), async (port) => {
      const { run: result, report } = await probe([
        { fetch: `http://127.0.0.1:${port}/` },
        { fetch: `http://localhost:${port}/` },
        { fetch: `http://127.0.0.2:${port}/` },
        { fetch: `http://[::ffff:127.0.0.2]:${port}/` },
        { fetch: `http://[::1]:${port}/` },
        { fetch: `http://0.0.0.0:${port}/` },
        { fetch: `http://127.0.0.3:${port}/` },
        { fetch: `http://127.0.0.6:${port}/` },
        { listen: "127.0.0.4" },
        { listen: "127.0.0.5" },
        { read: keyFile },
        { read: "/etc/passwd" },
        { write: `${dir}/written` },
        { env: "LIVEKIT_URL" },
        { env: "HOME" },
      ], {
        LIVEKIT_URL: `http://127.0.0.1:${port}`,
        LIVEKIT_OUTBOUND_ALLOW: "127.0.0.3",
        HTTPS_PROXY: "http://127.0.0.6:3128",
        LIVEKIT_JWT_BIND: "127.0.0.4:8080",
        LIVEKIT_KEY_FILE: keyFile,
        HOME: "/root",
      });
      const [sfu, byName, other, mapped, v6, wildcard, allowed, proxy, ...rest] = report.results;
      assert.equal(sfu, "status:200", "the SFU address is carved out");
      assert.equal(byName, "status:200", "a name resolving to it is allowed too");
      assert.equal(other, "denied", "another loopback address stays denied");
      assert.equal(mapped, "denied", "IPv4-mapped spelling is denied as well");
      assert.equal(v6, "denied");
      assert.equal(wildcard, "denied");
      assert.notEqual(allowed, "denied", "LIVEKIT_OUTBOUND_ALLOW entries are carved out");
      assert.notEqual(proxy, "denied", "the configured HTTPS proxy is carved out");
      assert.deepEqual(rest, [
        "ok",
        "denied",
        "ok",
        "denied",
        "denied",
        `http://127.0.0.1:${port}`,
        "undefined",
      ]);
      assert.equal(report.pid, result.pid, "the launcher execs Deno in its own process");
    });
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["keys"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launcher: configuration problems do not stop it from starting the service", async () => {
  const { report } = await probe([{ env: "LIVEKIT_URL" }, { fetch: "http://127.0.0.2:8080/" }], {
    LIVEKIT_URL: "ftp://nowhere",
    LIVEKIT_CS_API_URL_OVERRIDES: "garbage",
    LIVEKIT_JWT_BIND: "nonsense",
    LIVEKIT_OUTBOUND_ALLOW: "10.0.0.0/99",
    LIVEKIT_REDIS_URL: "redis://",
  });
  assert.deepEqual(report.results, ["ftp://nowhere", "denied"]);
});

Deno.test("launcher: unsafe TLS only for the exact skip-verify value", async () => {
  const on = await probe([], { LIVEKIT_INSECURE_SKIP_VERIFY_TLS: "YES_I_KNOW_WHAT_I_AM_DOING" });
  assert.match(on.run.stderr, /DANGER: TLS certificate validation is disabled/);
  for (const value of ["true", "1", "yes_i_know_what_i_am_doing"]) {
    const off = await probe([], { LIVEKIT_INSECURE_SKIP_VERIFY_TLS: value });
    assert.doesNotMatch(off.run.stderr, /DANGER/, value);
  }
});

Deno.test("launcher: healthcheck probes every bind form of configuration.md §8", async () => {
  await withLoopbackServer("127.0.0.1", () => new Response("{}"), async (p4) => {
    await withLoopbackServer("::1", () => new Response("{}"), async (p6) => {
      const cases: Record<string, string>[] = [
        { LIVEKIT_JWT_BIND: `:${p4}` },
        { LIVEKIT_JWT_BIND: `0.0.0.0:${p4}` },
        { LIVEKIT_JWT_BIND: `127.0.0.1:${p4}` },
        { LIVEKIT_JWT_BIND: `[::]:${p6}` },
        { LIVEKIT_JWT_BIND: `[::1]:${p6}` },
        { LIVEKIT_JWT_BIND: `localhost:${p4}` },
        { LIVEKIT_JWT_PORT: String(p4) },
        { LK_JWT_PORT: String(p4) },
        { LIVEKIT_JWT_PORT: String(p4), LK_JWT_PORT: "1" },
      ];
      for (const env of cases) {
        const result = await run(["healthcheck"], { env });
        assert.equal(result.code, 0, `${JSON.stringify(env)}: ${result.stderr}`);
        assert.equal(result.stderr, "");
      }
    });
  });
});

Deno.test("launcher: healthcheck exits 1 with the reason when the service is unhealthy", async () => {
  await withLoopbackServer("127.0.0.1", () => new Response("", { status: 503 }), async (port) => {
    const result = await run(["healthcheck"], { env: { LIVEKIT_JWT_BIND: `127.0.0.1:${port}` } });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `healthcheck failed: GET http://127.0.0.1:${port}/healthz answered 503\n`,
    );
  });
  const bad = await run(["healthcheck"], { env: { LIVEKIT_JWT_BIND: "8080" } });
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'healthcheck failed: LIVEKIT_JWT_BIND must be host:port, got "8080"\n');
});

Deno.test("launcher: invoked as lk-jwt-service-healthcheck it runs the healthcheck", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const link = `${dir}/lk-jwt-service-healthcheck`;
    await Deno.symlink(LAUNCHER, link);
    await withLoopbackServer("127.0.0.1", () => new Response("{}"), async (port) => {
      const ok = await run([], { command: link, env: { LIVEKIT_JWT_PORT: String(port) } });
      assert.equal(ok.code, 0, ok.stderr);
    });
    const port = closedPort();
    const down = await run([], { command: link, env: { LIVEKIT_JWT_BIND: `127.0.0.1:${port}` } });
    assert.equal(down.code, 1);
    assert.ok(
      down.stderr.startsWith(`healthcheck failed: GET http://127.0.0.1:${port}/healthz: `),
      down.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launcher: works from an empty read-only directory and writes nothing there", async () => {
  const dir = await Deno.makeTempDir();
  const cwd = `${dir}/cwd`;
  try {
    await Deno.mkdir(cwd);
    await Deno.chmod(dir, 0o755);
    await Deno.chmod(cwd, 0o555);
    // As root, read-only modes are not enforced: drop to an unprivileged user when possible.
    const prefix = unprivilegedPrefix();
    if (prefix) {
      const id = await new Deno.Command(prefix[0]!, { args: [...prefix.slice(1), "id", "-u"] })
        .output();
      assert.equal(new TextDecoder().decode(id.stdout).trim(), "65534");
    }
    const { report } = await probe([{ env: "LIVEKIT_URL" }], {
      LIVEKIT_URL: "ws://127.0.0.1:7880",
    }, { cwd, prefix });
    assert.deepEqual(report.results, ["ws://127.0.0.1:7880"]);
    const health = await run(["healthcheck"], {
      cwd,
      prefix,
      env: { LIVEKIT_JWT_BIND: `127.0.0.1:${closedPort()}` },
    });
    assert.equal(health.code, 1);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(cwd)), []);
  } finally {
    await Deno.chmod(cwd, 0o755);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launcher: next to a bundle it runs the bundled files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(LAUNCHER, `${dir}/lk-jwt-service`);
    await Deno.chmod(`${dir}/lk-jwt-service`, 0o755);
    await Deno.writeTextFile(
      `${dir}/lk-jwt-service-flags.js`,
      'console.log("--allow-env=LIVEKIT_URL\\n--ignore-env\\n--allow-net=127.0.0.1");\n',
    );
    // Reports whether a request's signal stays quiet after its response (deno.json's
    // "no-legacy-abort", which a bundle without deno.json must get as a flag).
    await Deno.writeTextFile(
      `${dir}/lk-jwt-service.js`,
      `let signal;
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
  signal = req.signal;
  return new Response("x");
});
await (await fetch(\`http://127.0.0.1:\${server.addr.port}/\`)).text();
await new Promise((r) => setTimeout(r, 50));
await server.shutdown();
console.log(JSON.stringify(["service", Deno.env.get("LIVEKIT_URL"), signal.aborted, ...Deno.args]));
`,
    );
    await Deno.writeTextFile(
      `${dir}/lk-jwt-service-healthcheck.js`,
      'console.log(JSON.stringify(["healthcheck", ...Deno.args]));\n',
    );
    const env = { LK_JWT_DENO: Deno.execPath(), LIVEKIT_URL: "wss://sfu" };
    const service = await run(["--version"], { command: `${dir}/lk-jwt-service`, env });
    assert.equal(service.code, 0, service.stderr);
    assert.deepEqual(JSON.parse(service.stdout), ["service", "wss://sfu", false, "--version"]);
    const health = await run(["healthcheck", "x"], { command: `${dir}/lk-jwt-service`, env });
    assert.equal(health.code, 0, health.stderr);
    assert.deepEqual(JSON.parse(health.stdout), ["healthcheck", "x"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
