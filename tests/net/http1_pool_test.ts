import assert from "node:assert/strict";
import { systemClock } from "../../lib/clock.ts";
import { DeadlineSet } from "../../lib/net/deadline.ts";
import { requestText } from "../../lib/net/http1.ts";
import { Http1Pool, type Http1Target } from "../../lib/net/http1_pool.ts";
import { OutboundError } from "../../lib/net/outbound_error.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { type RawReply, reply, startRawServer } from "./_raw_server.ts";
import { waitFor } from "./_helpers.ts";

function target(port: number): Http1Target {
  return { scheme: "http:", hostname: "127.0.0.1", port, tlsName: "127.0.0.1", pinned: false };
}

function post(port: number, max = 1024) {
  const url = new URL(`http://127.0.0.1:${port}/restart`);
  return {
    text: requestText({ method: "POST", url, headers: [], body: "{}" }),
    method: "POST",
    url,
    maxBodyBytes: max,
  };
}

Deno.test("http1 pool: sequential requests reuse one keep-alive connection", async () => {
  const server = startRawServer(() => ({ send: reply(200, "{}") }));
  const deadlines = new DeadlineSet(systemClock);
  const pool = new Http1Pool({ clock: systemClock, caCerts: [] });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await pool.request(target(server.port), post(server.port), deadlines.start(5000));
      assert.equal(res.status, 200);
    }
    assert.equal(server.connections, 1);
    assert.equal(pool.idleConnections, 1);
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});

Deno.test("http1 pool: a kept-alive connection the server dropped is replaced once, transparently", async () => {
  // The server answers and then closes without saying so (as after its idle timeout).
  const server = startRawServer(() => ({ send: reply(200, "ok"), close: true }));
  const deadlines = new DeadlineSet(systemClock);
  const pool = new Http1Pool({ clock: systemClock, caCerts: [] });
  try {
    await pool.request(target(server.port), post(server.port), deadlines.start(5000));
    await waitFor(() => server.serverCloses === 1, "server dropped the connection");
    const res = await pool.request(target(server.port), post(server.port), deadlines.start(5000));
    assert.equal(res.status, 200);
    assert.equal(server.connections, 2);
    assert.equal(server.requests.length, 2, "the POST reached the server exactly once more");
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});

Deno.test("http1 pool: no retry on a fresh connection or once the response started", async () => {
  const replies: RawReply[] = [{ close: true }, {
    send: "HTTP/1.1 200 OK\r\nContent-",
    close: true,
  }];
  const server = startRawServer(() => replies.shift() ?? { close: true });
  const deadlines = new DeadlineSet(systemClock);
  const pool = new Http1Pool({ clock: systemClock, caCerts: [] });
  try {
    await assert.rejects(
      pool.request(target(server.port), post(server.port), deadlines.start(5000)),
    );
    assert.equal(server.requests.length, 1, "fresh connection closed without answer: not resent");
    await assert.rejects(
      pool.request(target(server.port), post(server.port), deadlines.start(5000)),
    );
    assert.equal(server.requests.length, 2, "cut-off answer: not resent");
    assert.equal(pool.openConnections, 0, "failed connections are closed");
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});

Deno.test("http1 pool: a response with Connection: close ends the connection's reuse", async () => {
  const server = startRawServer(() => ({ send: reply(200, "{}", ["Connection: close"]) }));
  const deadlines = new DeadlineSet(systemClock);
  const pool = new Http1Pool({ clock: systemClock, caCerts: [] });
  try {
    for (let i = 0; i < 2; i++) {
      await pool.request(target(server.port), post(server.port), deadlines.start(5000));
    }
    assert.equal(server.connections, 2);
    assert.equal(pool.openConnections, 0);
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});

Deno.test("http1 pool: a connection that failed is never reused (too_large drops it)", async () => {
  const replies = [reply(200, "x".repeat(100)), reply(200, "ok")];
  const server = startRawServer(() => ({ send: replies.shift() ?? reply(200) }));
  const deadlines = new DeadlineSet(systemClock);
  const pool = new Http1Pool({ clock: systemClock, caCerts: [] });
  try {
    await assert.rejects(
      pool.request(target(server.port), post(server.port, 10), deadlines.start(5000)),
      (err: unknown) => err instanceof OutboundError && err.kind === "too_large",
    );
    const res = await pool.request(target(server.port), post(server.port), deadlines.start(5000));
    assert.equal(res.status, 200);
    assert.equal(server.connections, 2);
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});

Deno.test("http1 pool: caps — a burst reuses the first connections instead of opening one each", async () => {
  const server = startRawServer(() => ({ send: reply(200, "{}") }));
  const deadlines = new DeadlineSet(systemClock);
  const pool = new Http1Pool({
    clock: systemClock,
    caCerts: [],
    maxPerTarget: 2,
    maxConnecting: 1,
  });
  try {
    const all = await Promise.all(
      Array.from(
        { length: 10 },
        () => pool.request(target(server.port), post(server.port), deadlines.start(5000)),
      ),
    );
    assert.equal(all.every((r) => r.status === 200), true);
    assert.equal(server.requests.length, 10);
    assert.equal(server.connections, 1, "one connect at a time, waiters take released connections");
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});

Deno.test("http1 pool: at the cap a request waits, and its own deadline ends the wait", async () => {
  const server = startRawServer(() => ({ hang: true }));
  const clock = new ManualClock();
  const deadlines = new DeadlineSet(clock);
  const pool = new Http1Pool({ clock, caCerts: [], maxPerTarget: 1 });
  try {
    const first = deadlines.start(10_000);
    const busy = pool.request(target(server.port), post(server.port), first);
    busy.catch(() => {});
    await waitFor(() => server.requests.length === 1, "first request at the server");
    const second = deadlines.start(1_000);
    const waiting = pool.request(target(server.port), post(server.port), second);
    let settled = false;
    waiting.catch(() => (settled = true));
    await clock.advance(999);
    assert.equal(settled, false);
    await clock.advance(1);
    await assert.rejects(waiting);
    assert.equal(second.timedOut, true);
    assert.equal(server.connections, 1, "no second connection past the cap");
    await clock.advance(9_000);
    await assert.rejects(busy);
    assert.equal(first.timedOut, true);
    await waitFor(() => server.clientCloses === 1, "timed-out connection closed");
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});

Deno.test("http1 pool: idle connections are closed after idleMs; close() closes the rest", async () => {
  const server = startRawServer(() => ({ send: reply(200) }));
  const clock = new ManualClock();
  const deadlines = new DeadlineSet(clock);
  const pool = new Http1Pool({ clock, caCerts: [], idleMs: 1_000 });
  try {
    await pool.request(target(server.port), post(server.port), deadlines.start(5000));
    assert.equal(pool.idleConnections, 1);
    await clock.advance(1_000);
    assert.equal(pool.openConnections, 0);
    await waitFor(() => server.clientCloses === 1, "idle connection closed");
    await pool.request(target(server.port), post(server.port), deadlines.start(5000));
    assert.equal(server.connections, 2);
    pool.close();
    await waitFor(() => server.clientCloses === 2, "close() closes idle connections");
    await assert.rejects(
      pool.request(target(server.port), post(server.port), deadlines.start(5000)),
      (err: unknown) => err instanceof OutboundError && err.kind === "aborted",
    );
  } finally {
    pool.close();
    deadlines.close();
    await server.close();
  }
});
