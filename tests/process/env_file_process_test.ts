/**
 * The real service configured by a `.env` file in its working directory (`deno task start` and
 * the launcher): the values are used (it serves tokens signed with the file's secret), process
 * variables win over the file, and no value of the file ever reaches the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startFakeSfu } from "../fakes/sfu.ts";
import { spawnService } from "../support/service.ts";

const SECRET = "dotenv-secret-dotenv-secret-dotenv-secret";

Deno.test("process: configured from .env, the environment wins, nothing of the file is logged", async () => {
  // The fake SFU accepts only the key and secret of the file.
  const sfu = startFakeSfu({ key: "dotenv-key", secret: SECRET });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/.env`,
      [
        `LIVEKIT_URL=${sfu.wsUrl}`,
        "LIVEKIT_KEY=dotenv-key",
        `LIVEKIT_SECRET=${SECRET}`,
        "LIVEKIT_JWT_BIND=127.0.0.1:1",
        "LIVEKIT_LOG_LEVEL=error",
        "",
      ].join("\n"),
    );
    const svc = await spawnService({
      cwd: dir,
      // Only the bind address and the log level come from the process: they win.
      env: { LIVEKIT_JWT_BIND: "127.0.0.1:0", LIVEKIT_LOG_LEVEL: "debug" },
    });
    try {
      // Readiness asks the SFU with an admin token: 200 proves the file's key and secret are used.
      const ready = await fetch(`${svc.url}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
      assert.ok(sfu.calls.length > 0);
      await svc.waitForLog(/Read the environment file; .* path=\.env/);
      // /healthz is logged at DEBUG only (D12): visible with the process's level, not the file's.
      await (await fetch(`${svc.url}/healthz`)).body?.cancel();
      await svc.waitForLog(/ DEBUG request .*path=\/healthz/);
      assert.match(svc.logs(), /LiveKit key from LIVEKIT_KEY, secret from LIVEKIT_SECRET/);
      assert.ok(!svc.logs().includes(SECRET), "the secret never reaches the log");
    } finally {
      await svc.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await sfu.close();
  }
});
