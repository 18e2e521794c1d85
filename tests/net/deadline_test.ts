import assert from "node:assert/strict";
import { DeadlineSet } from "../../lib/net/deadline.ts";
import { ManualClock } from "../support/manual_clock.ts";

Deno.test("deadlines: many requests share one clock timer, each fires exactly when due", async () => {
  const clock = new ManualClock();
  const set = new DeadlineSet(clock);
  const ds = Array.from({ length: 100 }, (_, i) => set.start(1_000 + i));
  assert.equal(clock.pendingTimers, 1, "one timer for all deadlines");
  await clock.advance(999);
  assert.equal(ds.filter((d) => d.ended).length, 0, "never early");
  await clock.advance(1);
  assert.deepEqual(ds.map((d) => d.timedOut).slice(0, 2), [true, false]);
  assert.equal(clock.pendingTimers, 1, "armed again for the next deadline");
  await clock.advance(99);
  assert.equal(ds.filter((d) => d.timedOut).length, 100);
  assert.equal(set.size, 0);
  assert.equal(clock.pendingTimers, 0, "nothing armed when nothing is pending");
});

Deno.test("deadlines: a finished request leaves the set; the timer is not re-armed for it", async () => {
  const clock = new ManualClock();
  const set = new DeadlineSet(clock);
  const d = set.start(1_000);
  d.finish();
  assert.equal(set.size, 0);
  await clock.advance(1_000);
  assert.equal(d.timedOut, false);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("deadlines: a shorter deadline arms the timer earlier", async () => {
  const clock = new ManualClock();
  const set = new DeadlineSet(clock);
  const long = set.start(5_000);
  const short = set.start(100);
  await clock.advance(100);
  assert.equal(short.timedOut, true);
  assert.equal(long.ended, false);
  await clock.advance(4_900);
  assert.equal(long.timedOut, true);
});

Deno.test("deadlines: expiry runs the hook and aborts the (lazily made) signal with TimeoutError", async () => {
  const clock = new ManualClock();
  const set = new DeadlineSet(clock);
  const d = set.start(10);
  const signal = d.signal;
  let hooked = 0;
  d.onEnd(() => hooked++);
  await clock.advance(10);
  assert.equal(hooked, 1);
  assert.equal(signal.aborted, true);
  assert.equal((signal.reason as DOMException).name, "TimeoutError");
  // After the end: a new hook runs at once, a signal asked for now is already aborted.
  d.onEnd(() => hooked++);
  assert.equal(hooked, 2);
  assert.equal(d.signal.aborted, true);
});

Deno.test("deadlines: the caller's abort ends the request as aborted, not timed out", async () => {
  const clock = new ManualClock();
  const set = new DeadlineSet(clock);
  const ac = new AbortController();
  const d = set.start(1_000, ac.signal);
  let hooked = false;
  d.onEnd(() => (hooked = true));
  ac.abort(new Error("stop"));
  assert.equal(d.callerAborted, true);
  assert.equal(d.timedOut, false);
  assert.equal(hooked, true);
  assert.equal((d.signal.reason as Error).message, "stop");
  assert.equal(set.size, 0, "its deadline is gone");
  await clock.advance(1_000);
  assert.equal(d.timedOut, false);

  const early = new AbortController();
  early.abort();
  assert.equal(set.start(1_000, early.signal).callerAborted, true, "already aborted caller");
});

Deno.test("deadlines: finish() detaches from the caller's signal; close() drops everything", async () => {
  const clock = new ManualClock();
  const set = new DeadlineSet(clock);
  const ac = new AbortController();
  const d = set.start(1_000, ac.signal);
  d.finish();
  ac.abort();
  assert.equal(d.callerAborted, false);
  const other = set.start(1_000);
  set.close();
  assert.equal(set.size, 0);
  await clock.advance(1_000);
  assert.equal(other.timedOut, false);
  assert.equal(clock.pendingTimers, 0);
});
