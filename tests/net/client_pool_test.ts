import assert from "node:assert/strict";
import { ClientPool } from "../../lib/net/client_pool.ts";
import type { Pin, PinProxy } from "../../lib/net/pin_proxy.ts";
import { ManualClock } from "../support/manual_clock.ts";

function fakeProxy() {
  const live = new Set<string>();
  let n = 0;
  const proxy: PinProxy = {
    url: "http://127.0.0.1:9",
    register(target) {
      const id = `pin${++n}`;
      live.add(id);
      return { id, basicAuth: { username: id, password: "x" }, target, lastFailure: undefined };
    },
    release: (pin: Pin) => void live.delete(pin.id),
    close: () => Promise.resolve(),
  };
  return { proxy, live };
}

Deno.test("client pool: one client per (scheme, address, port, TLS name); idle ones closed with their pins", async () => {
  const clock = new ManualClock();
  const { proxy, live } = fakeProxy();
  const pool = new ClientPool({ caCerts: [], clock, pinProxy: () => proxy, idleMs: 1000 });
  try {
    const a = pool.pinned("https:", "8.8.8.8", 443, "hs.test");
    assert.equal(pool.pinned("https:", "8.8.8.8", 443, "HS.test"), a);
    assert.notEqual(pool.pinned("https:", "8.8.8.8", 8448, "hs.test"), a);
    assert.notEqual(pool.pinned("https:", "8.8.4.4", 443, "hs.test"), a);
    assert.notEqual(pool.pinned("https:", "8.8.8.8", 443, "other.test"), a);
    assert.equal(pool.size, 4);
    pool.acquire(a);
    await clock.advance(1000);
    assert.equal(pool.size, 1, "busy client kept");
    assert.equal(live.size, 1);
    pool.release(a);
    await clock.advance(1000);
    assert.equal(pool.size, 0);
    assert.equal(live.size, 0);
    assert.equal(clock.pendingTimers, 0, "sweep stops when nothing is left");
  } finally {
    pool.close();
  }
});

Deno.test("client pool: bounded; close() closes everything and refuses new clients", () => {
  const clock = new ManualClock();
  const { proxy, live } = fakeProxy();
  const pool = new ClientPool({ caCerts: [], clock, pinProxy: () => proxy, maxClients: 2 });
  pool.pinned("https:", "8.8.8.1", 443, "a");
  pool.pinned("https:", "8.8.8.2", 443, "b");
  pool.pinned("https:", "8.8.8.3", 443, "c");
  assert.equal(pool.size, 2);
  pool.plain();
  pool.close();
  assert.equal(pool.size, 0);
  assert.equal(live.size, 0);
  assert.throws(() => pool.plain());
});
