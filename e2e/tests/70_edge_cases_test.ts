/**
 * Further real-stack scenarios of real-stack.md §10: a participant that never joins (#5), a
 * duplicate identity (#7, D9), an expired Redis entry at start (#9, delegation.md §10.4) and the
 * three TLS trust settings for federation OpenID (#11, openid-and-discovery.md §7).
 *
 * @module
 */
import assert from "node:assert/strict";
import { REDIS_JOBS_KEY, SERVER_NAME } from "../lib/env.ts";
import { type Call, joinMatrixCall, newCall, runningSince } from "../lib/call.ts";
import { participantIdentities } from "../lib/livekit.ts";
import { Participant } from "../lib/participant.ts";
import { holdsFor, stopwatch, waitFor } from "../lib/poll.ts";
import { flushRedis, jobEntries, jobField, setJobEntry } from "../lib/redis.ts";
import { getTokenBody } from "../lib/requests.ts";
import { Service } from "../lib/service.ts";

async function requestToken(
  service: Service,
  call: Call,
  delay?: { delayId: string; delayTimeoutMs: number },
): Promise<{ status: number; json: Record<string, unknown> }> {
  return await service.post(
    "/get_token",
    getTokenBody(call.user, {
      roomId: call.roomId,
      openId: await call.user.openIdToken(),
      memberId: call.memberId,
      delay,
    }),
  );
}

Deno.test("never joins: the leave is sent about T after the request", async () => {
  const service = await Service.start({ name: "never-joins" });
  try {
    const call = await newCall("kim");
    // The homeserver holds the leave for 120 s, the client tells the service T = 5 s: a leave
    // seen within 20 s was sent by the service when its waiting time W = min(1 h, T) ran out.
    const delayId = await joinMatrixCall(call, 120_000);
    const delayMs = 5_000;
    const elapsed = stopwatch();
    const res = await requestToken(service, call, { delayId, delayTimeoutMs: delayMs });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event for a participant that never joined",
      timeoutMs: 20_000,
      intervalMs: 500,
    });
    assert.ok(elapsed() >= delayMs - 500, `not sent before the waiting time (${elapsed()} ms)`);
    console.log(`leave event visible ${elapsed()} ms after the token request`);
  } finally {
    await service.stop();
  }
});

Deno.test("duplicate identity: no leave while the second session is present", async () => {
  const service = await Service.start({ name: "duplicate" });
  const participants: Participant[] = [];
  try {
    const call = await newCall("lee");
    const delayMs = 10_000;
    const delayId = await joinMatrixCall(call, delayMs);
    const res = await requestToken(service, call, { delayId, delayTimeoutMs: delayMs });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const jwt = res.json.jwt as string;
    participants.push(await Participant.join(jwt, { name: "duplicate-1" }));
    // The same token again: the SFU ends the first session with DUPLICATE_IDENTITY.
    participants.push(await Participant.join(jwt, { name: "duplicate-2" }));
    assert.deepEqual(await participantIdentities(call.room), [call.identity]);
    await holdsFor(async () => (await runningSince(call, delayId)) !== undefined, {
      what: "delayed leave pending while the second session is present",
      timeoutMs: delayMs + 5_000,
    });
    for (const p of participants) await p.leave();
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event after the second session left",
      timeoutMs: 10_000,
    });
  } finally {
    for (const p of participants) await p.dispose();
    await service.stop();
  }
});

Deno.test("restore: an expired entry is purged before /healthz, without a homeserver call", async () => {
  await flushRedis();
  const call = await newCall("max");
  const delayMs = 600_000;
  const delayId = await joinMatrixCall(call, delayMs);
  const field = jobField(call.room, call.identity);
  // Restarted 20 min ago with T = 10 min: expired 10 min ago.
  await setJobEntry(field, {
    Params: {
      DelayId: delayId,
      DelayTimeout: delayMs * 1_000_000,
      ServerName: SERVER_NAME,
      LiveKitRoom: call.room,
      LiveKitIdentity: call.identity,
    },
    RestartedAt: new Date(Date.now() - 20 * 60_000).toISOString(),
  });
  assert.ok((await jobEntries()).has(field));
  const before = await runningSince(call, delayId);
  const service = await Service.start({ name: "restore-expired", redis: true });
  try {
    assert.equal((await jobEntries()).has(field), false, `${REDIS_JOBS_KEY} entry purged`);
    // No send and no restart: the delayed event is untouched.
    assert.equal(await runningSince(call, delayId), before);
    assert.equal(await call.user.hasLeft(call.roomId), false);
  } finally {
    await service.stop();
  }
});

Deno.test("TLS: test CA trusted → 200, not trusted → 401, skip-verify → 200", async (t) => {
  const call = await newCall("ned");
  const cases: { name: string; env: Record<string, string>; status: number }[] = [
    { name: "ca-trusted", env: {}, status: 200 },
    { name: "ca-not-trusted", env: { SSL_CERT_FILE: "/dev/null" }, status: 401 },
    {
      name: "skip-verify",
      env: {
        SSL_CERT_FILE: "/dev/null",
        LIVEKIT_INSECURE_SKIP_VERIFY_TLS: "YES_I_KNOW_WHAT_I_AM_DOING",
      },
      status: 200,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const service = await Service.start({ name: `tls-${c.name}`, env: c.env });
      try {
        const res = await requestToken(service, call);
        assert.equal(res.status, c.status, JSON.stringify(res.json));
      } finally {
        await service.stop();
      }
    });
  }
});
