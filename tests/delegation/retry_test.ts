import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { type Attempt, Backoff, retry } from "../../lib/delegation/retry.ts";
import { ManualClock } from "../support/manual_clock.ts";

Deno.test("retry Backoff: nominal interval 1 s ×1.5 capped at 60 s (no jitter at random 0.5)", () => {
  const b = new Backoff(() => 0.5);
  const waits = Array.from({ length: 14 }, () => b.next());
  deepStrictEqual(waits.slice(0, 5), [1000, 1500, 2250, 3375, 5062.5]);
  for (let i = 1; i < waits.length; i++) ok(waits[i]! >= waits[i - 1]!);
  strictEqual(waits.at(-1), 60_000);
  strictEqual(b.interval, 60_000);
});

Deno.test("retry Backoff: jitter spans [0.5·I, 1.5·I]", () => {
  const low = new Backoff(() => 0);
  const high = new Backoff(() => 0.999999);
  strictEqual(low.next(), 500);
  strictEqual(low.next(), 750);
  ok(Math.abs(high.next() - 1500) < 0.01);
  ok(Math.abs(high.next() - 2250) < 0.01);
});

Deno.test("retry Backoff: a hint replaces the wait, is floored at 1 s and resets I", () => {
  const b = new Backoff(() => 0.5);
  b.next();
  b.next();
  strictEqual(b.interval, 2250);
  strictEqual(b.next(0), 1000);
  strictEqual(b.interval, 1000);
  strictEqual(b.next(), 1000);
  strictEqual(b.next(7000), 7000);
  strictEqual(b.next(), 1000);
  strictEqual(b.next(-5), 1000);
});

function attemptsAt(clock: ManualClock, outcomes: Attempt<string>[]) {
  const times: number[] = [];
  const fn = (): Promise<Attempt<string>> => {
    times.push(clock.monotonic());
    return Promise.resolve(outcomes.shift() ?? { kind: "retry", value: "again" });
  };
  return { times, fn };
}

Deno.test("retry: first attempt immediately, then waits of 1, 1.5, 2.25 s", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, []);
  const run = retry(fn, { clock, budgetMs: 6_000 });
  await clock.advance(10_000);
  const r = await run;
  deepStrictEqual(times, [0, 1000, 2500, 4750]);
  strictEqual(r.end, "budget");
  strictEqual(r.attempts, 4);
  strictEqual(r.value, "again");
});

Deno.test("retry: budget rule gives up before a wait that would end past B (no attempt at B)", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, []);
  // After attempt 3 at 2.5 s the next wait is 2.25 s: 4.75 s > 4.7 s budget → give up at 2.5 s.
  const run = retry(fn, { clock, budgetMs: 4_700 });
  await clock.advance(10_000);
  const r = await run;
  deepStrictEqual(times, [0, 1000, 2500]);
  strictEqual(r.end, "budget");
});

Deno.test("retry: exactly reaching the budget is still allowed", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, []);
  const run = retry(fn, { clock, budgetMs: 2_500 });
  await clock.advance(10_000);
  await run;
  deepStrictEqual(times, [0, 1000, 2500]);
});

Deno.test("retry: a final outcome ends at once", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, [{ kind: "retry", value: "a" }, {
    kind: "final",
    value: "done",
  }]);
  const run = retry(fn, { clock, budgetMs: 60_000 });
  await clock.advance(5_000);
  const r = await run;
  deepStrictEqual(times, [0, 1000]);
  deepStrictEqual(r, { value: "done", end: "final", attempts: 2 });
});

Deno.test("retry: hint replaces the wait and resets the interval", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, [
    { kind: "retry", value: "5xx" },
    { kind: "retry", value: "5xx" },
    { kind: "retry", value: "429", hintMs: 4000 },
    { kind: "retry", value: "5xx" },
  ]);
  const run = retry(fn, { clock, budgetMs: 12_000 });
  await clock.advance(20_000);
  await run;
  // 0, +1 s, +1.5 s, +4 s (hint), +1 s (interval reset), +1.5 s, +2.25 s; +3.375 s passes 12 s
  deepStrictEqual(times, [0, 1000, 2500, 6500, 7500, 9000, 11250]);
});

Deno.test("retry: a hint of 0 waits 1 s (floor), never a tight loop", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, [
    { kind: "retry", value: "429", hintMs: 0 },
    { kind: "retry", value: "429", hintMs: 0 },
    { kind: "final", value: "ok" },
  ]);
  const run = retry(fn, { clock, budgetMs: 10_000 });
  await clock.advance(5_000);
  await run;
  deepStrictEqual(times, [0, 1000, 2000]);
});

Deno.test("retry: a hint longer than the remaining budget ends the retries at once", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, [{ kind: "retry", value: "429", hintMs: 30_000 }]);
  const run = retry(fn, { clock, budgetMs: 10_000 });
  await clock.advance(1);
  const r = await run;
  deepStrictEqual(times, [0]);
  strictEqual(r.end, "budget");
  strictEqual(r.value, "429");
});

Deno.test("retry: cancellation ends a wait", async () => {
  const clock = new ManualClock();
  const { times, fn } = attemptsAt(clock, []);
  const ac = new AbortController();
  const run = retry(fn, { clock, budgetMs: 60_000, signal: ac.signal });
  await clock.advance(1500);
  ac.abort();
  const r = await run;
  strictEqual(r.end, "aborted");
  deepStrictEqual(times, [0, 1000]);
  await clock.advance(10_000);
  strictEqual(times.length, 2);
  strictEqual(clock.pendingTimers, 0);
});
