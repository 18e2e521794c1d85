/**
 * Scenario 6 (clients-and-deployments.md §4; http-api.md §3): the token exchange through a real
 * nginx (Debian package) that serves the service under `/livekit/jwt` and the SFU under
 * `/livekit/sfu` with the configuration blocks of the README (extracted verbatim by
 * e2e/stack.sh), browser CORS preflight included.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LIVEKIT_WS_URL, PROXY_SFU_URL, PROXY_URL, stackPaths, uniqueSuffix } from "../lib/env.ts";
import { checkTokenAnswer, newCall } from "../lib/call.ts";
import { legacyIdentity } from "../lib/hash.ts";
import { participantIdentities } from "../lib/livekit.ts";
import { Participant } from "../lib/participant.ts";
import { getTokenBody, legacyBody } from "../lib/requests.ts";
import { postJson, Service } from "../lib/service.ts";
import { MatrixUser } from "../lib/synapse.ts";

const ORIGIN = "https://call.example.org";
const ALLOW_HEADERS = "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token";

async function preflight(path: string): Promise<Response> {
  const res = await fetch(`${PROXY_URL}${path}`, {
    method: "OPTIONS",
    headers: {
      origin: ORIGIN,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type",
    },
  });
  await res.body?.cancel();
  return res;
}

function assertCors(headers: Headers): void {
  // Headers.get joins repeated headers with ", ": exactly "*" means set once, not twice.
  assert.equal(headers.get("access-control-allow-origin"), "*");
  assert.equal(headers.get("access-control-allow-methods"), "POST");
  assert.equal(headers.get("access-control-allow-headers"), ALLOW_HEADERS);
}

async function nginxStartError(): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(`${stackPaths().run}/nginx-failed`);
  } catch {
    return undefined;
  }
}

Deno.test("reverse proxy: token exchange through nginx under /livekit/jwt", async () => {
  const nginxError = await nginxStartError();
  assert.equal(nginxError, undefined, `nginx rejected the README configuration: ${nginxError}`);
  const service = await Service.start({ name: "proxy" });
  const participants: Participant[] = [];
  try {
    for (const path of ["/get_token", "/sfu/get", "/delegate_delayed_leave"]) {
      const res = await preflight(path);
      assert.equal(res.status, 200, `preflight ${path}`);
      assertCors(res.headers);
    }

    const call = await newCall("ivy");
    const a = await postJson(
      `${PROXY_URL}/get_token`,
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
      }),
    );
    assert.equal(a.status, 200, JSON.stringify(a.json));
    assertCors(a.headers);
    checkTokenAnswer(a.json, { url: LIVEKIT_WS_URL, room: call.room, identity: call.identity });

    const bob = await MatrixUser.register(`jack-${uniqueSuffix()}`);
    const b = await postJson(
      `${PROXY_URL}/sfu/get`,
      legacyBody(bob, { roomId: call.roomId, openId: await bob.openIdToken() }),
    );
    assert.equal(b.status, 200, JSON.stringify(b.json));
    const bobIdentity = legacyIdentity(bob.userId, bob.deviceId);
    checkTokenAnswer(b.json, { url: LIVEKIT_WS_URL, room: call.room, identity: bobIdentity });

    // Errors keep their JSON bodies through the proxy.
    const bad = await postJson(`${PROXY_URL}/get_token`, {});
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, "M_BAD_JSON");
    const unknown = await fetch(`${PROXY_URL}/no/such/path`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), {
      errcode: "M_UNRECOGNIZED",
      error: "Unrecognized request",
    });
    const health = await fetch(`${PROXY_URL}/healthz`);
    await health.body?.cancel();
    assert.equal(health.status, 200);
    // Whether or not the proxy publishes /sfu_webhook, an unsigned webhook gets nowhere.
    const hook = await fetch(`${PROXY_URL}/sfu_webhook`, { method: "POST", body: "{}" });
    await hook.body?.cancel();
    assert.ok(
      [401, 404].includes(hook.status),
      `unsigned webhook through the proxy: ${hook.status}`,
    );

    participants.push(await Participant.join(a.json.jwt as string, { name: "proxy-a" }));
    // The second participant reaches the SFU through the README's /livekit/sfu/ block.
    participants.push(
      await Participant.join(b.json.jwt as string, { name: "proxy-b", url: PROXY_SFU_URL }),
    );
    assert.deepEqual(
      await participantIdentities(call.room),
      [call.identity, bobIdentity].sort(),
    );
    for (const p of participants) await p.leave();
  } finally {
    for (const p of participants) await p.dispose();
    await service.stop();
  }
});
