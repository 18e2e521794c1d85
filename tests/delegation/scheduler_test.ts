import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { Scheduler } from "../../lib/delegation/scheduler.ts";
import { ManualClock } from "../support/manual_clock.ts";

Deno.test("scheduler: fires in due order, ties in creation order, on one clock timer", async () => {
  const clock = new ManualClock();
  const s = new Scheduler(clock);
  const seen: string[] = [];
  s.setTimer(300, () => seen.push("c"));
  s.setTimer(100, () => seen.push("a"));
  s.setTimer(200, () => seen.push("b1"));
  s.setTimer(200, () => seen.push("b2"));
  strictEqual(clock.pendingTimers, 1);
  strictEqual(s.pending, 4);
  await clock.advance(99);
  deepStrictEqual(seen, []);
  await clock.advance(1);
  deepStrictEqual(seen, ["a"]);
  await clock.advance(200);
  deepStrictEqual(seen, ["a", "b1", "b2", "c"]);
  strictEqual(clock.pendingTimers, 0);
});

Deno.test("scheduler: cancelled timers never fire; an idle scheduler holds no clock timer", async () => {
  const clock = new ManualClock();
  const s = new Scheduler(clock);
  let fired = 0;
  const a = s.setTimer(100, () => fired++);
  const b = s.setTimer(50, () => fired++);
  b.cancel();
  b.cancel();
  await clock.advance(60);
  strictEqual(fired, 0);
  a.cancel();
  strictEqual(s.pending, 0);
  strictEqual(clock.pendingTimers, 0);
  await clock.advance(1000);
  strictEqual(fired, 0);
});

Deno.test("scheduler: an earlier timer re-arms the clock timer", async () => {
  const clock = new ManualClock();
  const s = new Scheduler(clock);
  const seen: number[] = [];
  s.setTimer(1000, () => seen.push(clock.monotonic()));
  s.setTimer(10, () => seen.push(clock.monotonic()));
  await clock.advance(2000);
  deepStrictEqual(seen, [10, 1000]);
});

Deno.test("scheduler: callbacks may schedule more timers, also due at once", async () => {
  const clock = new ManualClock();
  const s = new Scheduler(clock);
  const seen: string[] = [];
  s.setTimer(10, () => {
    seen.push("first");
    s.setTimer(0, () => seen.push("zero"));
    s.setTimer(5, () => seen.push("later"));
  });
  await clock.advance(10);
  deepStrictEqual(seen, ["first", "zero"]);
  await clock.advance(5);
  deepStrictEqual(seen, ["first", "zero", "later"]);
});

Deno.test("scheduler: resolution coalesces wake-ups to slot ends (never early)", async () => {
  const clock = new ManualClock();
  const s = new Scheduler(clock, { resolutionMs: 20 });
  const seen: [string, number][] = [];
  s.setTimer(3, () => seen.push(["a", clock.monotonic()]));
  s.setTimer(17, () => seen.push(["b", clock.monotonic()]));
  s.setTimer(20, () => seen.push(["c", clock.monotonic()]));
  s.setTimer(21, () => seen.push(["d", clock.monotonic()]));
  await clock.advance(19);
  deepStrictEqual(seen, []);
  await clock.advance(1);
  deepStrictEqual(seen, [["a", 20], ["b", 20], ["c", 20]]);
  await clock.advance(20);
  deepStrictEqual(seen.at(-1), ["d", 40]);
});

Deno.test("scheduler: a throwing callback does not stop the others", async () => {
  const clock = new ManualClock();
  const errors: unknown[] = [];
  const s = new Scheduler(clock, { onError: (e) => errors.push(e) });
  let ran = false;
  s.setTimer(1, () => {
    throw new Error("boom");
  });
  s.setTimer(1, () => void (ran = true));
  await clock.advance(1);
  strictEqual(ran, true);
  strictEqual(errors.length, 1);
});

Deno.test("scheduler: many cancellations are compacted", () => {
  const clock = new ManualClock();
  const s = new Scheduler(clock);
  const keep = s.setTimer(1e6, () => {});
  for (let i = 0; i < 5000; i++) s.setTimer(1000 + i, () => {}).cancel();
  strictEqual(s.pending, 1);
  keep.cancel();
  strictEqual(clock.pendingTimers, 0);
});

Deno.test("scheduler: sleep resolves, aborts, and refuses after close", async () => {
  const clock = new ManualClock();
  const s = new Scheduler(clock);
  const slept = s.sleep(100);
  await clock.advance(100);
  await slept;
  const ac = new AbortController();
  const aborted = s.sleep(100, ac.signal);
  ac.abort(new Error("stop"));
  await rejects(aborted, /stop/);
  strictEqual(s.pending, 0);
  s.setTimer(50, () => {});
  s.close();
  strictEqual(clock.pendingTimers, 0);
  await rejects(s.sleep(1), /closed/);
});
