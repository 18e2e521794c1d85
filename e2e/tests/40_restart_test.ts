/**
 * Scenario 4 (delegation.md §10; real-stack.md §10 #8): restart safety with Redis. The service is
 * killed with SIGKILL during a delegated call and started again against the same Redis; the
 * restored job finds the participant, keeps the delayed leave alive and sends it when the
 * participant leaves, then removes its Redis entry.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SERVER_NAME } from "../lib/env.ts";
import { joinMatrixCall, newCall, runningSince } from "../lib/call.ts";
import { Participant } from "../lib/participant.ts";
import { holdsFor, waitFor } from "../lib/poll.ts";
import { flushRedis, jobEntries, jobField } from "../lib/redis.ts";
import { getTokenBody } from "../lib/requests.ts";
import { Service } from "../lib/service.ts";

Deno.test("restart safety: kill -9 during a call, restart, the leave is still sent", async () => {
  await flushRedis();
  let first: Service | undefined = await Service.start({ name: "restart-1", redis: true });
  let second: Service | undefined;
  let participant: Participant | undefined;
  try {
    const call = await newCall("gina");
    const delayMs = 10_000;
    const delayId = await joinMatrixCall(call, delayMs);
    const scheduledAt = (await runningSince(call, delayId)) ?? 0;
    const res = await first.post(
      "/get_token",
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
        delay: { delayId, delayTimeoutMs: delayMs },
      }),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));

    // Persisted before the answer, in the reference implementation's format.
    const field = jobField(call.room, call.identity);
    const entry = (await jobEntries()).get(field);
    assert.ok(entry, `Redis field ${field} written before the 200`);
    assert.deepEqual(entry.Params, {
      DelayId: delayId,
      DelayTimeout: delayMs * 1_000_000,
      ServerName: SERVER_NAME,
      LiveKitRoom: call.room,
      LiveKitIdentity: call.identity,
    });

    participant = await Participant.join(res.json.jwt as string, { name: "restart" });
    await waitFor(async () => ((await runningSince(call, delayId)) ?? 0) > scheduledAt, {
      what: "the first restart",
      timeoutMs: 10_000,
    });

    await first.kill();
    first = undefined;
    const killedAt = (await runningSince(call, delayId)) ?? 0;
    second = await Service.start({ name: "restart-2", redis: true });

    // The restored job restarts the event again, and keeps it alive beyond T.
    await waitFor(async () => ((await runningSince(call, delayId)) ?? 0) > killedAt, {
      what: "a restart by the restored job",
      timeoutMs: 10_000,
    });
    await holdsFor(async () => (await runningSince(call, delayId)) !== undefined, {
      what: "delayed leave still pending after the restart",
      timeoutMs: 15_000,
    });

    await participant.leave();
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event after the participant left",
      timeoutMs: 10_000,
    });
    await waitFor(async () => !(await jobEntries()).has(field), {
      what: "the Redis entry to be deleted",
      timeoutMs: 10_000,
    });
  } finally {
    await participant?.dispose();
    await first?.kill();
    await second?.stop();
  }
});
