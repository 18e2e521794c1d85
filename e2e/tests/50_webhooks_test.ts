/**
 * Scenario 5 (http-api.md §11; clients-and-deployments.md §6): webhooks signed by the real SFU
 * verify at the service, and a captured webhook with a tampered body is rejected. The SFU sends
 * every webhook both to the service and to the harness's capture listener, so the suite holds
 * the exact bytes LiveKit signed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LIVEKIT_KEY, LIVEKIT_SECRET } from "../lib/env.ts";
import { joinMatrixCall, newCall, runningSince } from "../lib/call.ts";
import { bodySha256, decodeJwt, verifyHs256 } from "../lib/jwt.ts";
import { Participant } from "../lib/participant.ts";
import { waitFor } from "../lib/poll.ts";
import { getTokenBody } from "../lib/requests.ts";
import { Service } from "../lib/service.ts";
import { findWebhooks } from "../lib/webhook_sink.ts";

/** POSTs a captured webhook to the service, optionally with another body or token. */
async function replay(
  service: Service,
  hook: { authorization: string; contentType: string; body: Uint8Array<ArrayBuffer> },
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${service.baseUrl}/sfu_webhook`, {
    method: "POST",
    headers: { "content-type": hook.contentType, authorization: hook.authorization },
    body: hook.body,
  });
  return { status: res.status, text: await res.text() };
}

Deno.test("webhooks: real SFU signatures verify, a tampered body is rejected", async () => {
  // No SFU polling: only webhooks can tell the service that the participant left.
  const service = await Service.start({
    name: "webhooks",
    env: { LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "0" },
  });
  let participant: Participant | undefined;
  try {
    const call = await newCall("hana");
    // T = 60 s: the homeserver's own timer cannot fire during the short call below, so a leave
    // within seconds of the participant's exit was sent by the service on the leave webhook.
    const delayMs = 60_000;
    const delayId = await joinMatrixCall(call, delayMs);
    const scheduledAt = (await runningSince(call, delayId)) ?? 0;
    const res = await service.post(
      "/get_token",
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
        delay: { delayId, delayTimeoutMs: delayMs },
      }),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    participant = await Participant.join(res.json.jwt as string, { name: "webhooks" });

    const joined = await waitFor(
      async () => (await findWebhooks("participant_joined", call.identity))[0],
      {
        what: "participant_joined captured",
        timeoutMs: 10_000,
      },
    );
    // What LiveKit sends: a raw HS256 JWT (no "Bearer "), iss = our key, sha256 of the body.
    assert.equal(joined.authorization.startsWith("Bearer "), false);
    assert.ok(verifyHs256(joined.authorization, LIVEKIT_SECRET));
    const claims = decodeJwt(joined.authorization).payload;
    assert.equal(claims.iss, LIVEKIT_KEY);
    assert.equal(claims.sha256, bodySha256(joined.body));
    assert.equal(typeof claims.exp, "number");

    await waitFor(async () => ((await runningSince(call, delayId)) ?? 0) > scheduledAt, {
      what: "the first restart",
      timeoutMs: 10_000,
    });

    // The authentic webhook replayed is accepted (a duplicate is answered 200 as well)...
    const authentic = await replay(service, joined);
    assert.equal(authentic.status, 200, authentic.text);
    // ...one byte changed in the body breaks the sha256 claim: rejected.
    const tampered: Uint8Array<ArrayBuffer> = new TextEncoder().encode(
      new TextDecoder().decode(joined.body).replace("participant_joined", "participant_left_"),
    );
    const rejected = await replay(service, { ...joined, body: tampered });
    assert.equal(rejected.status, 401);
    assert.deepEqual(JSON.parse(rejected.text), {
      errcode: "M_UNAUTHORIZED",
      error: "The request could not be authorised.",
    });
    // A signature made with another secret is rejected too.
    const parts = joined.authorization.split(".");
    const badSig = { ...joined, authorization: `${parts[0]}.${parts[1]}.${"A".repeat(43)}` };
    assert.equal((await replay(service, badSig)).status, 401);
    // The rejected fake "left" event did not end the call.
    assert.equal(await call.user.hasLeft(call.roomId), false);

    await participant.leave();
    await waitFor(async () => (await findWebhooks("participant_left", call.identity))[0], {
      what: "participant_left captured",
      timeoutMs: 10_000,
    });
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event sent on the real participant_left webhook",
      timeoutMs: 5_000,
    });
  } finally {
    await participant?.dispose();
    await service.stop();
  }
});
