/**
 * Scenario 6 (clients-and-deployments.md §4; http-api.md §3): the token exchange through a real
 * nginx and a real Caddy (Debian packages), each serving the service under `/livekit/jwt` and
 * the SFU under `/livekit/sfu` with the README's configuration block for it (extracted verbatim
 * by e2e/stack.sh), browser CORS preflight, error bodies and a WebRTC join through the proxy
 * included.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  CADDY_SFU_URL,
  CADDY_URL,
  LIVEKIT_WS_URL,
  PROXY_SFU_URL,
  PROXY_URL,
  stackPaths,
  uniqueSuffix,
} from "../lib/env.ts";
import { checkTokenAnswer, newCall } from "../lib/call.ts";
import { legacyIdentity } from "../lib/hash.ts";
import { participantIdentities } from "../lib/livekit.ts";
import { Participant } from "../lib/participant.ts";
import { getTokenBody, legacyBody } from "../lib/requests.ts";
import { postJson, Service } from "../lib/service.ts";
import { MatrixUser } from "../lib/synapse.ts";

const ORIGIN = "https://call.example.org";
const ALLOW_HEADERS = "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token";

/** One reverse proxy of the stack and the README block it runs. */
interface Proxy {
  name: "nginx" | "Caddy";
  /** Base URL of the service through the proxy. */
  url: string;
  /** SFU signalling URL through the proxy. */
  sfuUrl: string;
  /** File in the run folder that holds the proxy's start error, if any. */
  failedFile: string;
}

const PROXIES: Proxy[] = [
  { name: "nginx", url: PROXY_URL, sfuUrl: PROXY_SFU_URL, failedFile: "nginx-failed" },
  { name: "Caddy", url: CADDY_URL, sfuUrl: CADDY_SFU_URL, failedFile: "caddy-failed" },
];

async function preflight(base: string, path: string): Promise<Response> {
  const res = await fetch(`${base}${path}`, {
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

async function startError(proxy: Proxy): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(`${stackPaths().run}/${proxy.failedFile}`);
  } catch {
    return undefined;
  }
}

async function exchangeThrough(proxy: Proxy): Promise<void> {
  const error = await startError(proxy);
  assert.equal(error, undefined, `${proxy.name} rejected the README configuration: ${error}`);
  const base = proxy.url;
  const service = await Service.start({ name: `proxy-${proxy.name.toLowerCase()}` });
  const participants: Participant[] = [];
  try {
    for (const path of ["/get_token", "/sfu/get", "/delegate_delayed_leave"]) {
      const res = await preflight(base, path);
      assert.equal(res.status, 200, `preflight ${path}`);
      assertCors(res.headers);
    }

    const call = await newCall(proxy.name === "nginx" ? "ivy" : "kim");
    const a = await postJson(
      `${base}/get_token`,
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
      }),
    );
    assert.equal(a.status, 200, JSON.stringify(a.json));
    assertCors(a.headers);
    checkTokenAnswer(a.json, { url: LIVEKIT_WS_URL, room: call.room, identity: call.identity });

    const bob = await MatrixUser.register(
      `${proxy.name === "nginx" ? "jack" : "lou"}-${uniqueSuffix()}`,
    );
    const b = await postJson(
      `${base}/sfu/get`,
      legacyBody(bob, { roomId: call.roomId, openId: await bob.openIdToken() }),
    );
    assert.equal(b.status, 200, JSON.stringify(b.json));
    const bobIdentity = legacyIdentity(bob.userId, bob.deviceId);
    checkTokenAnswer(b.json, { url: LIVEKIT_WS_URL, room: call.room, identity: bobIdentity });

    // Errors keep their JSON bodies through the proxy.
    const bad = await postJson(`${base}/get_token`, {});
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, "M_BAD_JSON");
    const unknown = await fetch(`${base}/no/such/path`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), {
      errcode: "M_UNRECOGNIZED",
      error: "Unrecognized request",
    });
    // Wrong method: 405 with Allow and the Matrix error body, through the proxy.
    const wrong = await fetch(`${base}/get_token`);
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "POST, OPTIONS");
    assertCors(wrong.headers);
    assert.deepEqual(await wrong.json(), {
      errcode: "M_UNRECOGNIZED",
      error: "Unrecognized request",
    });
    const health = await fetch(`${base}/healthz`);
    await health.body?.cancel();
    assert.equal(health.status, 200);
    // Whether or not the proxy publishes /sfu_webhook, an unsigned webhook gets nowhere.
    const hook = await fetch(`${base}/sfu_webhook`, { method: "POST", body: "{}" });
    await hook.body?.cancel();
    assert.ok(
      [401, 404].includes(hook.status),
      `unsigned webhook through the proxy: ${hook.status}`,
    );

    const tag = proxy.name.toLowerCase();
    participants.push(await Participant.join(a.json.jwt as string, { name: `${tag}-a` }));
    // The second participant reaches the SFU through the README's /livekit/sfu/ block.
    participants.push(
      await Participant.join(b.json.jwt as string, { name: `${tag}-b`, url: proxy.sfuUrl }),
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
}

for (const proxy of PROXIES) {
  Deno.test(`reverse proxy: token exchange through ${proxy.name} under /livekit/jwt`, async () => {
    await exchangeThrough(proxy);
  });
}
