import assert from "node:assert/strict";
import { InFlight, LruCache, raceSignal } from "../../lib/matrix/cache.ts";

Deno.test("LruCache evicts the least recently used entry beyond its bound", () => {
  const c = new LruCache<string, number>(2);
  c.set("a", 1);
  c.set("b", 2);
  assert.equal(c.get("a"), 1); // a is now most recent
  c.set("c", 3);
  assert.equal(c.peek("b"), undefined);
  assert.equal(c.peek("a"), 1);
  assert.equal(c.size, 2);
  assert.equal(new LruCache().size, 0);
});

Deno.test("InFlight shares one task per key until it settles", async () => {
  const f = new InFlight<string, number>();
  let runs = 0;
  let release!: (v: number) => void;
  const task = () => {
    runs++;
    return new Promise<number>((r) => (release = r));
  };
  const a = f.run("k", task);
  const b = f.run("k", task);
  assert.equal(runs, 1);
  release(7);
  assert.deepEqual(await Promise.all([a, b]), [7, 7]);
  assert.equal(f.size, 0);
  const c = f.run("k", () => Promise.resolve(8));
  assert.equal(await c, 8);
});

Deno.test("raceSignal rejects on abort without cancelling the shared work", async () => {
  const ac = new AbortController();
  let resolve!: (v: string) => void;
  const shared = new Promise<string>((r) => (resolve = r));
  const raced = raceSignal(shared, ac.signal);
  ac.abort(new Error("gone"));
  await assert.rejects(raced, /gone/);
  resolve("done");
  assert.equal(await shared, "done");
});

Deno.test("LruCache: re-setting a key refreshes it without evicting; the bound holds at 1", () => {
  const c = new LruCache<string, number>(2);
  c.set("a", 1);
  c.set("b", 2);
  c.set("a", 3); // a refreshed, nothing evicted
  assert.equal(c.size, 2);
  c.set("c", 4); // b is now the least recently used
  assert.equal(c.peek("b"), undefined);
  assert.equal(c.peek("a"), 3);
  const one = new LruCache<string, number>(1);
  one.set("x", 1);
  one.set("y", 2);
  assert.equal(one.size, 1);
  assert.equal(one.peek("y"), 2);
});
