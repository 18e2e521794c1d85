/**
 * Scenario 9 (replicas.md §4 "Real stack"): two replicas of the service on the stack's Redis
 * behind nginx (round robin; the SFU's webhook URL points at nginx), a real participant with a
 * delegated leave on the real Synapse. The replica that owns the job is killed with `kill -9`
 * mid-call: the other one takes the job over and keeps restarting the delayed event past T,
 * and sends it within 5 s of the participant leaving (the leave webhook reaching it through
 * nginx).
 *
 * @module
 */
import assert from "node:assert/strict";
import { joinMatrixCall, newCall, runningSince } from "../lib/call.ts";
import { Participant } from "../lib/participant.ts";
import { holdsFor, stopwatch, waitFor } from "../lib/poll.ts";
import { flushRedis, jobEntries, jobField, jobOwner } from "../lib/redis.ts";
import { getTokenBody } from "../lib/requests.ts";
import { postJson, Service } from "../lib/service.ts";
import { startUpstream, type Upstream } from "../lib/upstream.ts";

/** Lease of the replicas: a dead owner's jobs move within TTL + TTL/5 = 3.6 s. */
const TTL_MS = 3_000;
const TAKEOVER_BOUND_MS = TTL_MS + TTL_MS / 5;
/** Element Call's default T. */
const T_MS = 10_000;

function replica(id: string, port: number): Promise<Service> {
  return Service.start({
    name: `replica-${id}`,
    redis: true,
    bind: `127.0.0.1:${port}`,
    env: {
      LIVEKIT_REPLICAS: "true",
      LIVEKIT_REPLICA_ID: id,
      LIVEKIT_REPLICA_TTL_MS: String(TTL_MS),
    },
  });
}

Deno.test("replicas: kill -9 of the replica that owns the job mid-call — the leave is still restarted past T and sent on leaving", async () => {
  await flushRedis();
  const replicas = new Map<string, Service>();
  let upstream: Upstream | undefined;
  let participant: Participant | undefined;
  try {
    replicas.set("a", await replica("a", 8083));
    replicas.set("b", await replica("b", 8084));
    upstream = await startUpstream(["127.0.0.1:8083", "127.0.0.1:8084"]);

    const call = await newCall("ruth");
    const delayId = await joinMatrixCall(call, T_MS);
    const scheduledAt = (await runningSince(call, delayId)) ?? 0;
    const res = await postJson(
      `${upstream.url}/get_token`,
      getTokenBody(call.user, {
        roomId: call.roomId,
        openId: await call.user.openIdToken(),
        memberId: call.memberId,
        delay: { delayId, delayTimeoutMs: T_MS },
      }),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const field = jobField(call.room, call.identity);
    const owner = await jobOwner(field);
    assert.ok(owner === "a" || owner === "b", `owner recorded with the job: ${owner}`);
    const survivor = owner === "a" ? "b" : "a";
    assert.ok((await jobEntries()).has(field), "the reference's hash entry is written too");

    // The join webhook reaches either replica through nginx; the owner restarts the event.
    participant = await Participant.join(res.json.jwt as string, { name: "replicas" });
    await waitFor(async () => ((await runningSince(call, delayId)) ?? 0) > scheduledAt, {
      what: "the first restart",
      timeoutMs: 10_000,
    });

    const beforeKill = (await runningSince(call, delayId)) ?? 0;
    const killedAt = Date.now();
    await replicas.get(owner)!.kill();
    replicas.delete(owner);
    // Synapse's running_since is the time of the last restart (same host clock as Date.now()).
    const restartedAt = await waitFor(async () => {
      const since = (await runningSince(call, delayId)) ?? 0;
      return since > beforeKill ? since : undefined;
    }, { what: "a restart by the surviving replica", timeoutMs: T_MS, intervalMs: 100 });
    const takeoverMs = restartedAt - killedAt;
    console.log(
      `takeover: the surviving replica restarted the delayed event ${takeoverMs} ms after kill -9 (bound TTL + TTL/5 = ${TAKEOVER_BOUND_MS} ms)`,
    );
    assert.ok(takeoverMs <= TAKEOVER_BOUND_MS);
    assert.equal(await jobOwner(field), survivor);

    // Past T after the kill the leave has still not fired: the survivor keeps restarting it.
    await holdsFor(async () => (await runningSince(call, delayId)) !== undefined, {
      what: "delayed leave pending past T after the owner died",
      timeoutMs: 2 * T_MS,
    });
    assert.equal(await call.user.hasLeft(call.roomId), false);

    const sinceLeave = stopwatch();
    await participant.leave();
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "leave event after the participant left",
      timeoutMs: 5_000,
      intervalMs: 100,
    });
    console.log(
      `leave: visible in the room ${sinceLeave()} ms after the participant left (bound 5000 ms)`,
    );
    await waitFor(async () => !(await jobEntries()).has(field) && !(await jobOwner(field)), {
      what: "job and owner entries removed",
      timeoutMs: 10_000,
    });
  } finally {
    await participant?.dispose();
    await upstream?.stop();
    for (const s of replicas.values()) await s.stop();
  }
});
