import assert from "node:assert/strict";
import { Semaphore } from "../lib/semaphore.ts";

Deno.test("semaphore: at most n at once, the rest wait their turn", async () => {
  const slots = new Semaphore(2);
  const signal = new AbortController().signal;
  let running = 0;
  let peak = 0;
  let gate!: () => void;
  const opened = new Promise<void>((resolve) => (gate = resolve));
  const done = Promise.all(Array.from({ length: 6 }, () =>
    slots.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await opened;
      running--;
    }, signal)));
  await Promise.resolve();
  assert.equal(running, 2);
  gate();
  await done;
  assert.equal(peak, 2);
});

Deno.test("semaphore: a waiter whose signal aborts gives up with the signal's reason", async () => {
  const slots = new Semaphore(1);
  const release = await slots.acquire(new AbortController().signal);
  const stop = new AbortController();
  const waiting = slots.acquire(stop.signal);
  stop.abort(new Error("stopped"));
  await assert.rejects(waiting, /stopped/);
  release();
  (await slots.acquire(new AbortController().signal))();
});
