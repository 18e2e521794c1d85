/**
 * App-service mode as a process: the service started through the launcher with a registration
 * file (read permission derived by the launcher), a fake Synapse playing the MSC4512 proxy and
 * the homeserver calls, and a fake SFU. A delegation through the new endpoint is driven to the
 * final send, which goes out as the app service acting as the user; the ping goes through the
 * fake Synapse to the service; neither token ever appears in the log.
 */
import assert from "node:assert/strict";
import { postSignedWebhook, startFakeSfu } from "../fakes/sfu.ts";
import { asClient, startFakeSynapseAs } from "../fakes/synapse_as.ts";
import { baseEnv, spawnService } from "../support/service.ts";
import { memberIdentity, roomAlias } from "../../lib/livekit/names.ts";
import { userId } from "../../lib/ids.ts";
import { runCheckConfig } from "../../lib/cli/check_config.ts";

const SECRET = "devsecret-devsecret-devsecret-devsecret";
const ALICE = "@alice:hs.test";
const ROOM = "!call:hs.test";

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function registration(hs: { asToken: string; hsToken: string }, url: string): string {
  return [
    "id: lk-jwt-service",
    `url: ${url}`,
    `as_token: ${hs.asToken}`,
    `hs_token: ${hs.hsToken}`,
    "sender_localpart: _lk_jwt_service",
    "rate_limited: false",
    "namespaces:",
    "  users:",
    "    - regex: '@.*:hs\\.test'",
    "      exclusive: false",
    "io.element.msc4512.proxy_prefix: rtc/livekit",
    `io.element.msc4512.proxy_url: ${url}`,
    'io.element.msc4502.scopes: ["urn:matrix:client:io.element.msc4502:rooms:is_joined"]',
    "",
  ].join("\n");
}

Deno.test("process: app-service token, delegation to the final send as the user, ping", async () => {
  const sfu = startFakeSfu();
  const hs = startFakeSynapseAs();
  const dir = await Deno.makeTempDir();
  const regPath = `${dir}/registration.yaml`;
  // The port is known only once the service listens; the file's url is only used by Synapse.
  await Deno.writeTextFile(regPath, registration(hs, "http://127.0.0.1:1"));
  const env = {
    ...baseEnv(sfu.wsUrl),
    LIVEKIT_AS_REGISTRATION_FILE: regPath,
    LIVEKIT_HS_SERVER_NAME: hs.serverName,
    LIVEKIT_CS_API_URL_OVERRIDES: `${hs.serverName}=${hs.url}`,
    LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "0",
  };
  const svc = await spawnService({ env });
  try {
    hs.serviceUrl = svc.url;
    hs.join(ROOM, ALICE);
    const token = await asClient(svc.url, {
      path: "/_matrix/client/v1/rtc/livekit/get_token",
      hsToken: hs.hsToken,
      user: ALICE,
      body: { url: sfu.wsUrl, room_id: ROOM, slot_id: "m.call#ROOM", member_id: "m1" },
    });
    assert.equal(token.status, 200, token.text);
    const room = roomAlias(ROOM, "m.call#ROOM");
    const identity = memberIdentity(userId(ALICE), "m1");
    assert.equal(sfu.calls.filter((c) => c.method === "CreateRoom" && c.room === room).length, 1);

    // Delegation: the look-up, then the job; the participant joins and leaves.
    hs.delayedEvents.set("syd_as", { roomId: ROOM, delayMs: 2_000, owner: ALICE });
    const delegate = await asClient(svc.url, {
      path: "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave",
      hsToken: hs.hsToken,
      user: ALICE,
      body: {
        url: sfu.wsUrl,
        room_id: ROOM,
        slot_id: "m.call#ROOM",
        member_id: "m1",
        delay_id: "syd_as",
      },
    });
    assert.equal(delegate.status, 200, delegate.text);
    const webhook = async (event: string, extra: Record<string, unknown> = {}) => {
      const body = JSON.stringify({
        event,
        id: crypto.randomUUID(),
        room: { name: room },
        participant: { identity, ...extra },
      });
      assert.equal(await postSignedWebhook(svc.url, body, { key: "devkey", secret: SECRET }), 200);
    };
    await webhook("participant_joined");
    await until(() => hs.delayed.count("syd_as", "restart") >= 2, "two restarts");
    await webhook("participant_left", { disconnectReason: "CLIENT_INITIATED" });
    await until(() => hs.delayed.count("syd_as", "send") === 1, "the send");
    for (const action of ["restart", "send"]) {
      const call = hs.calls.find((c) => c.path.endsWith(`/syd_as/${action}`))!;
      assert.equal(call.method, "POST");
      assert.equal(call.authorization, `Bearer ${hs.asToken}`, action);
      assert.equal(call.query.get("user_id"), ALICE, action);
    }

    // Ping through the homeserver: Synapse calls the service with the hs_token.
    const ping = await fetch(`${hs.url}/_matrix/client/v1/appservice/lk-jwt-service/ping`, {
      method: "POST",
      headers: { Authorization: `Bearer ${hs.asToken}` },
      body: "{}",
    });
    assert.equal(ping.status, 200, await ping.clone().text());
    assert.equal(typeof (await ping.json()).duration_ms, "number");

    // check-config against the same homeserver: tokens, reachability, is_joined, fed_proxy,
    // ping (with the registration's url pointing at the running service).
    await Deno.writeTextFile(regPath, registration(hs, svc.url));
    const lines: string[] = [];
    const status = await runCheckConfig(
      [],
      (n) => ({ ...env, LIVEKIT_JWT_BIND: "127.0.0.1:0" } as Record<string, string>)[n],
      {
        write: (line) => void lines.push(line),
        fetch: (input, init) => {
          const url = new URL(
            typeof input === "string" ? input : input instanceof URL ? input.href : input.url,
          );
          if (url.pathname.startsWith("/twirp/")) {
            return Promise.resolve(
              new Response('{"code":"not_found","msg":"participant not found"}', {
                status: 404,
                headers: { "Content-Type": "application/json" },
              }),
            );
          }
          return fetch(input, init);
        },
      },
    );
    const text = lines.join("\n");
    assert.match(text, /PASS app-service tokens/);
    assert.match(text, /PASS homeserver hs\.test accepts the as_token/);
    assert.match(text, /PASS is_joined/);
    assert.match(text, /PASS fed_proxy/);
    assert.match(text, /PASS ping through hs\.test/);
    assert.equal(status, 0, text);

    const logs = svc.logs();
    assert.doesNotMatch(logs, new RegExp(hs.asToken));
    assert.doesNotMatch(logs, new RegExp(hs.hsToken));
    assert.doesNotMatch(logs, /syd_as/);
    assert.match(logs, /AppService="hs\.test/);
  } finally {
    await svc.stop();
    await hs.close();
    await sfu.close();
    await Deno.remove(dir, { recursive: true });
  }
});
