/**
 * Replica-mode job writes (replicas.md §3 "Ownership"): registrations own, restarts are
 * confirmed in batches and only where owned, a restart of a job whose registration has not
 * landed is still a registration, jobs owned elsewhere are reported.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../lib/log.ts";
import { OWN, RELEASE_JOB, TOUCH } from "../../lib/replica/scripts.ts";
import { ReplicaWrites, TOUCH_BATCH_MS } from "../../lib/replica/store.ts";
import { ManualClock } from "../support/manual_clock.ts";

/** A Redis stand-in that records which script ran with which arguments. */
function fakeRedis() {
  const calls: { script: string; args: string[] }[] = [];
  const names = new Map([[OWN.sha, "own"], [TOUCH.sha, "touch"], [RELEASE_JOB.sha, "release"]]);
  let fail = false;
  const state = { lost: [] as string[] };
  return {
    calls,
    state,
    set fail(v: boolean) {
      fail = v;
    },
    command: (args: string[]): Promise<unknown> => {
      if (fail) return Promise.reject(new Error("Redis unavailable"));
      const script = names.get(args[1]!) ?? args[0]!;
      const keys = Number(args[2]);
      calls.push({ script, args: args.slice(3 + keys) });
      if (script === "touch") return Promise.resolve(state.lost);
      if (script === "release") return Promise.resolve(1);
      return Promise.resolve(null);
    },
  };
}

Deno.test("replica writes: restarts are confirmed in one batch per 100 ms", async () => {
  const clock = new ManualClock();
  const redis = fakeRedis();
  const writes = new ReplicaWrites({
    id: "a",
    command: redis.command,
    clock,
    log: silentLogger,
    onLost: () => {},
  });
  for (let i = 0; i < 50; i++) await writes.put(`f${i}`, `v${i}`, "add");
  assert.equal(redis.calls.filter((c) => c.script === "own").length, 50);
  const done = Array.from({ length: 50 }, (_, i) => writes.put(`f${i}`, `r${i}`, "restart"));
  await clock.advance(TOUCH_BATCH_MS - 1);
  assert.equal(redis.calls.filter((c) => c.script === "touch").length, 0);
  await clock.advance(1);
  assert.deepEqual(await Promise.all(done), Array(50).fill("stored"));
  const touches = redis.calls.filter((c) => c.script === "touch");
  assert.equal(touches.length, 1);
  assert.equal(touches[0]!.args[0], "a");
  assert.equal(touches[0]!.args.length, 1 + 2 * 50);
});

Deno.test("replica writes: a job owned elsewhere is reported; done releases", async () => {
  const clock = new ManualClock();
  const redis = fakeRedis();
  const lost: string[] = [];
  const writes = new ReplicaWrites({
    id: "a",
    command: redis.command,
    clock,
    log: silentLogger,
    onLost: (f) => lost.push(f),
  });
  await writes.put("f1", "v", "add");
  await writes.put("f2", "v", "add");
  redis.state.lost = ["f2"];
  const p = [writes.put("f1", "r", "restart"), writes.put("f2", "r", "restart")];
  await clock.advance(TOUCH_BATCH_MS);
  await Promise.all(p);
  assert.deepEqual(lost, ["f2"]);
  await writes.delete("f1");
  assert.deepEqual(redis.calls.at(-1), { script: "release", args: ["f1", "a"] });
});

Deno.test("replica writes: a restart of a job whose registration has not landed is a registration", async () => {
  const clock = new ManualClock();
  const redis = fakeRedis();
  const writes = new ReplicaWrites({
    id: "a",
    command: redis.command,
    clock,
    log: silentLogger,
    onLost: () => {},
  });
  redis.fail = true;
  assert.equal(await writes.put("f", "v1", "add"), "failed");
  const restart = writes.put("f", "v2", "restart");
  redis.fail = false;
  await clock.advance(1_000);
  await restart;
  await writes.flush(1_000);
  const ops = redis.calls.map((c) => `${c.script} ${c.args[1]}`);
  assert.deepEqual(ops, ["own v2"], "the retried registration carries the newest value");
  // Once owned, restarts are ordinary confirmations again.
  const next = writes.put("f", "v3", "restart");
  await clock.advance(TOUCH_BATCH_MS);
  await next;
  assert.equal(redis.calls.at(-1)!.script, "touch");
});
