/**
 * The service the way Deno Deploy runs it (`DENO_DEPLOYMENT_ID` set, no launcher, every
 * permission, the platform owning the only listener): users of other homeservers are verified
 * over federation, because the outbound client dials checked addresses itself and needs no
 * listener of its own.
 */
import assert from "node:assert/strict";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { startFakeSfu } from "../fakes/sfu.ts";
import { baseEnv, spawnService } from "../support/service.ts";

const PRELOAD = new URL("../support/deploy_preload.ts", import.meta.url).pathname;

Deno.test("process (Deploy mode): a remote homeserver's user is verified with no listener of ours", async () => {
  const sfu = startFakeSfu();
  const hs = await startFakeHomeserver({ tls: true });
  const server = `localhost:${hs.port}`;
  hs.setUser("alice-token", `@alice:${server}`);
  const { LIVEKIT_JWT_BIND: _, ...env } = baseEnv(sfu.wsUrl);
  const svc = await spawnService({
    env: {
      ...env,
      DENO_DEPLOYMENT_ID: "test-deployment",
      LIVEKIT_FULL_ACCESS_HOMESERVERS: server,
      SSL_CERT_FILE: hs.ca!.caCertPath,
    },
    direct: [`--preload=${PRELOAD}`],
  });
  try {
    await svc.waitForLog(/Running on Deno Deploy/);
    const res = await fetch(`${svc.url}/get_token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        room_id: "!room:example.com",
        slot_id: "m.call#ROOM",
        openid_token: {
          access_token: "alice-token",
          token_type: "Bearer",
          matrix_server_name: server,
          expires_in: 3600,
        },
        member: { id: "m1", claimed_user_id: `@alice:${server}`, claimed_device_id: "D" },
      }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    await res.body?.cancel();
    assert.equal(hs.count("/_matrix/federation/v1/openid/userinfo"), 1);
    assert.doesNotMatch(svc.logs(), /listening is not allowed/);
  } finally {
    await svc.stop();
    await hs.close();
    await sfu.close();
  }
});
