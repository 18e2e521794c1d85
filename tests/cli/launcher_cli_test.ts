/**
 * The command line of `bin/lk-jwt-service` as a new admin meets it: unknown or misspelled flags
 * stop it with exit status 2 and the closest known flag, `--help`/`-h`/`help` print the usage,
 * the DNS-derived permission note appears once at INFO for `serve` only, and `.env` files are
 * read by Deno's loader before the permissions are narrowed, with process variables winning.
 *
 * The service is replaced by the permission probe (`LK_JWT_ENTRY`) where only the launcher's
 * own behaviour matters; every server listens on loopback.
 *
 * @module
 */
import assert from "node:assert/strict";
import { closedPort, probe, run, withLoopbackServer } from "./_launcher_helpers.ts";
import { PROBE } from "./_launcher_helpers.ts";

/** A name that never resolves (RFC 6761 `.invalid`). */
const UNRESOLVABLE = { LIVEKIT_URL: "wss://sfu.lk-jwt-test.invalid" };
const NOTE = "Configured host names did not resolve; they get no exemption from --deny-net";

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("launcher: unknown or misspelled flags exit 2 with the closest known flag, nothing starts", async () => {
  const cases: Array<[string[], string]> = [
    [
      ["--livekit-jwt-bnd=127.0.0.1:18099"],
      "unknown flag --livekit-jwt-bnd; did you mean --livekit-jwt-bind?",
    ],
    [
      ["--LIVEKIT_JWT_BIND=:9000"],
      "unknown flag --LIVEKIT_JWT_BIND; did you mean --livekit-jwt-bind?",
    ],
    [["--jwt-bind", ":9000"], "unknown flag --jwt-bind; did you mean --livekit-jwt-bind?"],
    [["check-config", "--ofline"], "unknown flag --ofline; did you mean --offline?"],
    [["chek-config"], 'unknown command "chek-config"; did you mean check-config?'],
    [["--frobnicate"], "unknown flag --frobnicate"],
    [["serve", "--offline"], "--offline only applies to check-config"],
    [["--livekit-url"], "--livekit-url needs a value: --livekit-url=<value>"],
  ];
  for (const [args, message] of cases) {
    const result = await run(args, { env: { LK_JWT_ENTRY: PROBE } });
    assert.equal(result.code, 2, args.join(" "));
    assert.equal(
      result.stderr,
      `lk-jwt-service: ${message} (run "lk-jwt-service --help" for the commands and flags)\n`,
    );
    assert.equal(result.stdout, "", "the service (here: the probe) never ran");
  }
});

Deno.test("launcher: --help, -h and help print the usage without starting anything", async () => {
  for (const args of [["--help"], ["-h"], ["help"], ["check-config", "--help"]]) {
    const result = await run(args, { env: UNRESOLVABLE });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "", `${args.join(" ")}: no notes, no logs`);
    assert.match(result.stdout, /^lk-jwt-service \S+: MatrixRTC authorization service/);
    for (
      const word of ["check-config", "--offline", "healthcheck", "--livekit-jwt-bind", "--env-file"]
    ) {
      assert.ok(result.stdout.includes(word), `${args.join(" ")} mentions ${word}`);
    }
    assert.match(result.stdout, /README\.md,\s+section "Configuration"/);
  }
});

Deno.test("launcher: the DNS permission note only for serve, once, at INFO", async () => {
  const serve = await probe([], UNRESOLVABLE);
  const notes = serve.run.stderr.split("\n").filter((l) => l.includes(NOTE));
  assert.equal(notes.length, 1, serve.run.stderr);
  assert.match(
    notes[0]!,
    /^\S+ INFO Configured host names .* names="LIVEKIT_URL: sfu\.lk-jwt-test\.invalid"$/,
  );

  const version = await run(["--version"], { env: UNRESOLVABLE });
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^lk-jwt-service \S+\n$/);
  assert.equal(version.stderr, "");

  const health = await run(["healthcheck"], {
    env: { ...UNRESOLVABLE, LIVEKIT_JWT_BIND: `127.0.0.1:${closedPort()}` },
  });
  assert.equal(health.code, 1);
  assert.doesNotMatch(health.stderr, /did not resolve/);

  const offline = await run(["check-config", "--offline"], {
    env: { ...UNRESOLVABLE, LIVEKIT_KEY: "k", LIVEKIT_SECRET: "s".repeat(32) },
  });
  assert.equal(offline.code, 0, offline.stderr);
  assert.equal(offline.stderr, "");
  assert.match(offline.stdout, /^PASS configuration/m);
});

Deno.test("launcher: .env in the working directory is read before permissions are narrowed; the environment wins", async () => {
  await withDir(async (dir) => {
    await withLoopbackServer("127.0.0.1", () => new Response("sfu"), async (port) => {
      await Deno.writeTextFile(
        `${dir}/.env`,
        [
          "# settings for a first run",
          `LIVEKIT_URL=http://127.0.0.1:${port}`,
          "LIVEKIT_KEY=from-file",
          'LIVEKIT_SECRET="file-secret-file-secret-file-secret"',
          "LIVEKIT_LOG_LEVEL=debug",
          "",
        ].join("\n"),
      );
      const { run: result, report } = await probe(
        [
          { env: "LIVEKIT_URL" },
          { env: "LIVEKIT_KEY" },
          { env: "LIVEKIT_LOG_LEVEL" },
          { fetch: `http://127.0.0.1:${port}/` },
          { read: `${dir}/.env` },
        ],
        { LIVEKIT_KEY: "from-process" },
        { cwd: dir },
      );
      assert.deepEqual(
        report.results,
        [
          `http://127.0.0.1:${port}`,
          "from-process",
          "debug",
          "status:200",
          "denied",
        ],
        "values from the file, process variables first, the SFU carved out, the file itself unreadable",
      );
      assert.match(result.stderr, /INFO Read the environment file; .* path=\.env\n/);
      assert.doesNotMatch(result.stderr + result.stdout, /file-secret|from-file/);
    });
  });
});

Deno.test("launcher: LIVEKIT_ENV_FILE and --env-file name another file; a missing one is an error", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/.env`, "LIVEKIT_URL=wss://from-dot-env\n");
    await Deno.writeTextFile(`${dir}/a.env`, "LIVEKIT_URL=wss://from-a\n");
    await Deno.writeTextFile(`${dir}/b.env`, "LIVEKIT_URL=wss://from-b\n");
    const url = async (env: Record<string, string>, args: string[] = []) => {
      const result = await run(args, {
        cwd: dir,
        stdin: JSON.stringify([{ env: "LIVEKIT_URL" }]),
        env: { LK_JWT_ENTRY: PROBE, ...env },
      });
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout).results[0];
    };
    assert.equal(await url({}), "wss://from-dot-env");
    assert.equal(await url({ LIVEKIT_ENV_FILE: `${dir}/a.env` }), "wss://from-a");
    assert.equal(await url({ LIVEKIT_ENV_FILE: "a.env" }, ["--env-file=b.env"]), "wss://from-b");
    assert.equal(await url({}, ["--env-file", `${dir}/b.env`]), "wss://from-b");
    const missing = await run(["--env-file=nope.env"], { cwd: dir, env: { LK_JWT_ENTRY: PROBE } });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      "lk-jwt-service: cannot read the environment file nope.env (--env-file / LIVEKIT_ENV_FILE)\n",
    );
  });
});

Deno.test("launcher: healthcheck finds the bind address in the environment file", async () => {
  await withDir(async (dir) => {
    await withLoopbackServer("127.0.0.1", () => new Response(null), async (port) => {
      await Deno.writeTextFile(`${dir}/.env`, `LIVEKIT_JWT_BIND=127.0.0.1:${port}\n`);
      const ok = await run(["healthcheck"], { cwd: dir });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stderr, "");
      const other = closedPort();
      const env = await run(["healthcheck"], {
        cwd: dir,
        env: { LIVEKIT_JWT_BIND: `127.0.0.1:${other}` },
      });
      assert.equal(env.code, 1, "the process variable wins over the file");
      assert.match(env.stderr, new RegExp(`GET http://127\\.0\\.0\\.1:${other}/healthz`));
    });
  });
});
