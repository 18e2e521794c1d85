/**
 * Scenario 3 (delegation.md §9, §14; real-stack.md §10 #4, #6, #10): delegated leave on a real
 * Synapse. The user publishes a call membership, schedules the delayed leave and hands its
 * `delay_id` to the service; while the participant is on the SFU the service keeps restarting
 * the delayed event, and when the participant goes away the service sends it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Call, joinMatrixCall, newCall, runningSince } from "../lib/call.ts";
import { Participant } from "../lib/participant.ts";
import { holdsFor, stopwatch, waitFor } from "../lib/poll.ts";
import { getTokenBody } from "../lib/requests.ts";
import { Service } from "../lib/service.ts";

async function tokenWithDelegation(
  service: Service,
  call: Call,
  delay: { delayId: string; delayTimeoutMs: number },
): Promise<string> {
  const res = await service.post(
    "/get_token",
    getTokenBody(call.user, {
      roomId: call.roomId,
      openId: await call.user.openIdToken(),
      memberId: call.memberId,
      delay,
    }),
  );
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json.jwt as string;
}

/** Waits until the service restarted the delayed event (its running-since time moved). */
async function firstRestart(
  call: Call,
  event: { delayId: string; scheduledAt: number },
): Promise<void> {
  await waitFor(async () => {
    const since = await runningSince(call, event.delayId);
    assert.ok(since !== undefined, "delayed event fired before any restart");
    return since > event.scheduledAt;
  }, { what: "the first restart of the delayed event", timeoutMs: 10_000 });
}

Deno.test("delegation: restarted while joined, sent within 5 s of a clean leave", async () => {
  const service = await Service.start({ name: "delegation-leave" });
  let participant: Participant | undefined;
  try {
    const call = await newCall("dana");
    const delayId = await joinMatrixCall(call, 10_000);
    const scheduledAt = (await runningSince(call, delayId)) ?? 0;
    const jwt = await tokenWithDelegation(service, call, { delayId, delayTimeoutMs: 10_000 });
    participant = await Participant.join(jwt, { name: "delegation-leave" });
    await firstRestart(call, { delayId, scheduledAt });

    // T = 10 s, yet 30 s later the leave has still not fired: the service keeps restarting it.
    await holdsFor(async () => (await runningSince(call, delayId)) !== undefined, {
      what: "delayed leave still pending while joined",
      timeoutMs: 30_000,
    });
    assert.equal(await call.user.hasLeft(call.roomId), false);

    const elapsed = stopwatch();
    await participant.leave();
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event in the room state",
      timeoutMs: 5_000,
    });
    console.log(`leave event visible ${elapsed()} ms after the clean leave`);
  } finally {
    await participant?.dispose();
    await service.stop();
  }
});

Deno.test("delegation: sent within 60 s after the participant is killed", async () => {
  const service = await Service.start({ name: "delegation-kill" });
  let participant: Participant | undefined;
  try {
    const call = await newCall("erin");
    // T = 120 s: the homeserver's own timer cannot fire within the 60 s window after the kill
    // (the service restarted the event when the participant joined), so a leave seen within
    // 60 s was sent by the service after it noticed the participant was gone.
    const delayMs = 120_000;
    const delayId = await joinMatrixCall(call, delayMs);
    const scheduledAt = (await runningSince(call, delayId)) ?? 0;
    const jwt = await tokenWithDelegation(service, call, { delayId, delayTimeoutMs: delayMs });
    participant = await Participant.join(jwt, { name: "delegation-kill" });
    await firstRestart(call, { delayId, scheduledAt });

    const elapsed = stopwatch();
    await participant.kill();
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event after SIGKILL of the participant",
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    console.log(`leave event visible ${elapsed()} ms after SIGKILL`);
  } finally {
    await participant?.dispose();
    await service.stop();
  }
});

Deno.test("delegation: /delegate_delayed_leave after joining", async () => {
  const service = await Service.start({ name: "delegation-late" });
  let participant: Participant | undefined;
  try {
    const call = await newCall("fay");
    const openId = await call.user.openIdToken();
    const token = await service.post(
      "/get_token",
      getTokenBody(call.user, { roomId: call.roomId, openId, memberId: call.memberId }),
    );
    assert.equal(token.status, 200, JSON.stringify(token.json));
    participant = await Participant.join(token.json.jwt as string, { name: "delegation-late" });

    // Only now the client hands over its delayed leave (the join webhook is long gone: the
    // service must find the participant by polling the SFU).
    const delayId = await joinMatrixCall(call, 10_000);
    const scheduledAt = (await runningSince(call, delayId)) ?? 0;
    const res = await service.post(
      "/delegate_delayed_leave",
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
        delay: { delayId, delayTimeoutMs: 10_000 },
      }),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(res.json, {});
    await firstRestart(call, { delayId, scheduledAt });
    await holdsFor(async () => (await runningSince(call, delayId)) !== undefined, {
      what: "delayed leave still pending past T",
      timeoutMs: 15_000,
    });

    await participant.leave();
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event after the clean leave",
      timeoutMs: 5_000,
    });
  } finally {
    await participant?.dispose();
    await service.stop();
  }
});
