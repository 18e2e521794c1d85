import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type HashBackend, MemoryHash } from "../../lib/store/backend.ts";
import { JobStore } from "../../lib/store/job_store.ts";
import { silentLogger } from "../../lib/log.ts";
import { ManualClock } from "../support/manual_clock.ts";

/** A backend whose commands complete only when the test releases them. */
class GatedHash implements HashBackend {
  readonly data = new Map<string, string>();
  readonly pending: { cmd: string; release: (ok: boolean) => void }[] = [];
  readonly done: string[] = [];

  #gate(cmd: string, apply: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        cmd,
        release: (ok) => {
          if (ok) {
            apply();
            this.done.push(cmd);
            resolve();
          } else reject(new Error(`${cmd} failed`));
        },
      });
    });
  }
  set(field: string, value: string) {
    return this.#gate(`HSET ${field} ${value}`, () => this.data.set(field, value));
  }
  delete(field: string) {
    return this.#gate(`HDEL ${field}`, () => this.data.delete(field));
  }
  getAll() {
    return Promise.resolve(new Map(this.data));
  }
  ping() {
    return Promise.resolve();
  }
  close() {
    return Promise.resolve();
  }
  release(ok = true) {
    const p = this.pending.shift();
    if (!p) throw new Error("nothing pending");
    p.release(ok);
  }
}

Deno.test("job store: without a backend every write succeeds at once", async () => {
  const store = new JobStore({ clock: new ManualClock(), log: silentLogger });
  strictEqual(await store.put("f", "v"), "stored");
  strictEqual(await store.delete("f"), "stored");
  strictEqual(store.pending, 0);
});

Deno.test("job store: writes of one field are ordered; HDEL lands after HSET", async () => {
  const clock = new ManualClock();
  const hash = new GatedHash();
  const store = new JobStore({ backend: hash, clock, log: silentLogger });
  const put = store.put("f", "v1");
  const del = store.delete("f");
  strictEqual(hash.pending.length, 1, "the HDEL waits behind the HSET in flight");
  hash.release();
  strictEqual(await put, "stored");
  await clock.flush();
  strictEqual(hash.pending.length, 1);
  hash.release();
  strictEqual(await del, "stored");
  deepStrictEqual(hash.done, ["HSET f v1", "HDEL f"]);
  strictEqual(hash.data.has("f"), false);
  strictEqual(store.pending, 0);
});

Deno.test("job store: a waiting write is superseded by a later one of the same field", async () => {
  const clock = new ManualClock();
  const hash = new GatedHash();
  const store = new JobStore({ backend: hash, clock, log: silentLogger });
  const a = store.put("f", "a");
  const b = store.put("f", "b");
  const c = store.put("f", "c");
  strictEqual(await b, "superseded");
  hash.release();
  strictEqual(await a, "stored");
  await clock.flush();
  hash.release();
  strictEqual(await c, "stored");
  deepStrictEqual(hash.done, ["HSET f a", "HSET f c"]);
});

Deno.test("job store: fields never wait for each other", () => {
  const clock = new ManualClock();
  const hash = new GatedHash();
  const store = new JobStore({ backend: hash, clock, log: silentLogger });
  void store.put("slow", "1");
  void store.put("fast", "2");
  strictEqual(hash.pending.length, 2);
  hash.pending[1]!.release(true);
  deepStrictEqual(hash.done, ["HSET fast 2"]);
  hash.release();
});

Deno.test("job store: failed writes retry 1 s doubling to 30 s, until they land", async () => {
  const clock = new ManualClock();
  const hash = new MemoryHash();
  const store = new JobStore({ backend: hash, clock, log: silentLogger });
  hash.down = true;
  const times: number[] = [];
  const orig = hash.set.bind(hash);
  hash.set = (f, v) => {
    times.push(clock.monotonic());
    return orig(f, v);
  };
  strictEqual(await store.put("f", "v"), "failed");
  await clock.advance(1_000 + 2_000 + 4_000 + 8_000 + 16_000 + 30_000 + 30_000);
  deepStrictEqual(times, [0, 1000, 3000, 7000, 15000, 31000, 61000, 91000]);
  hash.down = false;
  await clock.advance(30_000);
  strictEqual(hash.data.get("f"), "v");
  strictEqual(store.pending, 0);
  strictEqual(clock.pendingTimers, 0);
});

Deno.test("job store: a later write supersedes a failed one waiting for its retry", async () => {
  const clock = new ManualClock();
  const hash = new MemoryHash();
  const store = new JobStore({ backend: hash, clock, log: silentLogger });
  hash.down = true;
  strictEqual(await store.put("f", "old"), "failed");
  hash.down = false;
  strictEqual(await store.delete("f"), "stored");
  await clock.advance(60_000);
  deepStrictEqual(hash.log, ["HDEL f"]);
  strictEqual(clock.pendingTimers, 0);
});

Deno.test("job store: retryNow and flush push waiting retries at once", async () => {
  const clock = new ManualClock();
  const hash = new MemoryHash();
  const store = new JobStore({ backend: hash, clock, log: silentLogger });
  hash.down = true;
  await store.put("a", "1");
  await store.put("b", "2");
  hash.down = false;
  strictEqual(await store.flush(2_000), true);
  deepStrictEqual(Object.fromEntries(hash.data), { a: "1", b: "2" });
});

Deno.test("job store: flush gives up after its deadline", async () => {
  const clock = new ManualClock();
  const hash = new GatedHash();
  const store = new JobStore({ backend: hash, clock, log: silentLogger });
  void store.put("a", "1");
  const flushed = store.flush(2_000);
  await clock.advance(2_000);
  strictEqual(await flushed, false);
  hash.release();
});
