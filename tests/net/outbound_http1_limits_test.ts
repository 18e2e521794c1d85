/**
 * Limits of the outbound client's built-in HTTP/1.1 path (openid-and-discovery.md §8.4, §8.5):
 * deadlines from the injected clock, caller aborts, connect timeouts, size caps and redirects.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../support/manual_clock.ts";
import { reply, startRawServer } from "./_raw_server.ts";
import {
  loopbackDial,
  rejectsKind as rejects,
  scriptedResolver,
  testOutbound,
  waitFor,
} from "./_helpers.ts";

const GUARD = { serverName: "hs.test" };
const KIB = 1024;
const PATH = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_a%2Fb/restart";

Deno.test("built-in POST: the whole-request deadline fires from the injected clock and drops the connection", async () => {
  const server = startRawServer(() => ({ hang: true }));
  const clock = new ManualClock();
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["8.8.8.8"] }),
    dial: loopbackDial(server.port).dial,
    clock,
  });
  try {
    const pending = outbound.request({
      url: `http://hs.test${PATH}`,
      method: "POST",
      body: "{}",
      timeoutMs: 5_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    let settled = false;
    pending.catch(() => (settled = true));
    await waitFor(() => server.requests.length === 1, "request at the server");
    await clock.advance(4_999);
    assert.equal(settled, false);
    await clock.advance(1);
    await rejects(pending, "timeout");
    await waitFor(() => server.clientCloses === 1, "connection closed by the client");
  } finally {
    await outbound.close();
    await server.close();
  }
});

Deno.test("built-in POST: caller abort and connect timeout are their own kinds", async () => {
  const server = startRawServer(() => ({ hang: true }));
  const clock = new ManualClock();
  const { outbound } = testOutbound({ resolver: scriptedResolver(), clock });
  const stuck = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["8.8.8.8"] }),
    clock,
    connect: (o) =>
      new Promise((_, reject) => o.signal.addEventListener("abort", () => reject(new Error("x")))),
  }).outbound;
  try {
    const ac = new AbortController();
    const aborted = outbound.request({
      url: `http://127.0.0.1:${server.port}${PATH}`,
      method: "POST",
      body: "{}",
      timeoutMs: 5_000,
      maxBodyBytes: KIB,
      signal: ac.signal,
    });
    await waitFor(() => server.requests.length === 1, "request at the server");
    ac.abort();
    await rejects(aborted, "aborted");

    const pending = stuck.request({
      url: `https://hs.test${PATH}`,
      method: "POST",
      body: "{}",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    pending.catch(() => {});
    await clock.flush();
    await clock.advance(5_000);
    const err = await rejects(pending, "timeout");
    assert.match(err.message, /connect to 8\.8\.8\.8:443 timed out/);
  } finally {
    await outbound.close();
    await stuck.close();
    await server.close();
  }
});

Deno.test("built-in POST: too large is final (no other address), redirects follow the delayed-event policy", async () => {
  const server = startRawServer((req) => {
    if (req.target === "/big") return { send: reply(200, "x".repeat(2 * KIB)) };
    if (req.target === "/r307") return { send: reply(307, "", ["Location: /echo"]) };
    if (req.target === "/r302") return { send: reply(302, "", ["Location: /echo"]) };
    if (req.target === "/away") {
      return { send: reply(308, "", ["Location: http://other.test/echo"]) };
    }
    return { send: reply(200, `${req.method} ${req.body}`) };
  });
  const { dial, dials } = loopbackDial(server.port);
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["8.8.8.8", "8.8.4.4"] }),
    dial,
  });
  const redirect = { maxHops: 3, httpsOnly: false, sameHostOnly: true, statuses: [307, 308] };
  const send = (path: string) =>
    outbound.request({
      url: `http://hs.test${path}`,
      method: "POST",
      body: "{}",
      timeoutMs: 5_000,
      maxBodyBytes: KIB,
      guard: GUARD,
      redirect,
    });
  try {
    await rejects(send("/big"), "too_large");
    assert.deepEqual(dials, ["8.8.8.8:80"], "a too-large answer is not retried elsewhere");
    const followed = await send("/r307");
    assert.equal(new TextDecoder().decode(followed.body), "POST {}");
    assert.equal(followed.url, "http://hs.test/echo");
    assert.equal((await send("/r302")).status, 302, "302 is not followed for delayed events");
    await rejects(send("/away"), "redirect");
  } finally {
    await outbound.close();
    await server.close();
  }
});
