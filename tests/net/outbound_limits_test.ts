import assert from "node:assert/strict";
import type { RedirectPolicy } from "../../lib/net/outbound.ts";
import { splice, writeAll } from "../support/pipe.ts";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { ManualClock } from "../support/manual_clock.ts";
import {
  loopbackDial,
  policyAllowing,
  rejectsKind as rejects,
  scriptedResolver,
  testOutbound,
  waitFor,
} from "./_helpers.ts";

const GUARD = { serverName: "hs.test" };
const KIB = 1024;

Deno.test("size caps: exactly the cap is fine, one byte more is too_large (declared or streamed)", async () => {
  const cap = 1000;
  const hs = await startFakeHomeserver({
    tls: true,
    extraRoutes: (req) => {
      const p = new URL(req.url).pathname;
      if (p === "/exact") return new Response("a".repeat(cap));
      if (p === "/declared") return new Response("a".repeat(cap + 1));
      if (p === "/streamed") {
        let sent = 0;
        return new Response(
          new ReadableStream({
            pull(c) {
              if (sent >= 10) return c.close();
              sent++;
              c.enqueue(new TextEncoder().encode("b".repeat(500)));
            },
          }),
        );
      }
      return undefined;
    },
  });
  const { dial } = loopbackDial(hs.port);
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["127.0.0.1"] }),
    dial,
    caCerts: [hs.ca!.caCertPem],
  });
  const req = (path: string) =>
    outbound.request({
      url: `https://hs.test${path}`,
      timeoutMs: 5000,
      maxBodyBytes: cap,
      guard: GUARD,
    });
  try {
    assert.equal((await req("/exact")).body.length, cap);
    await rejects(req("/declared"), "too_large");
    await rejects(req("/streamed"), "too_large");
    assert.equal((await req("/exact")).status, 200, "client still usable afterwards");
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("timeouts: the whole-request deadline fires from the injected clock", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { hang: true } });
  const clock = new ManualClock();
  const { dial } = loopbackDial(hs.port);
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["127.0.0.1"] }),
    dial,
    clock,
    caCerts: [hs.ca!.caCertPem],
  });
  try {
    const pending = outbound.request({
      url: "https://hs.test/.well-known/matrix/server",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    pending.catch(() => {});
    let settled = false;
    pending.catch(() => (settled = true));
    await waitFor(() => hs.counts.requests === 1, "request at the server");
    await clock.advance(9_999);
    assert.equal(settled, false);
    await clock.advance(1);
    await rejects(pending, "timeout");
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("connect timeout per address and caller abort are distinct kinds", async () => {
  const clock = new ManualClock();
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["8.8.8.8"] }),
    clock,
    connect: (o) =>
      new Promise((_, reject) => o.signal.addEventListener("abort", () => reject(new Error("x")))),
  });
  try {
    const pending = outbound.request({
      url: "https://hs.test/",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    pending.catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    await clock.advance(5_000);
    const err = await rejects(pending, "timeout");
    assert.match(err.message, /connect to 8\.8\.8\.8:443 timed out/);

    const ac = new AbortController();
    const aborted = outbound.request({
      url: "https://hs.test/",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
      signal: ac.signal,
    });
    aborted.catch(() => {});
    ac.abort();
    await rejects(aborted, "aborted");
  } finally {
    await outbound.close();
  }
});

const WELL_KNOWN: RedirectPolicy = {
  maxHops: 5,
  httpsOnly: true,
  sameHostOnly: false,
  statuses: [301, 302, 303, 307, 308],
};
const DELAYED: RedirectPolicy = {
  maxHops: 3,
  httpsOnly: false,
  sameHostOnly: true,
  statuses: [307, 308],
};

Deno.test("redirects: followed per policy, loops/hops/http/foreign hosts refused, each hop guarded", async () => {
  const hs = await startFakeHomeserver({
    tls: true,
    extraRoutes: async (req) => {
      const u = new URL(req.url);
      const m = /^\/hop\/(\d+)$/.exec(u.pathname);
      const to = (loc: string, status = 302) =>
        new Response(null, { status, headers: { location: loc } });
      if (m) {
        const n = Number(m[1]);
        return n === 0 ? new Response("done") : to(`/hop/${n - 1}`);
      }
      if (u.pathname === "/loop") return to("/loop2");
      if (u.pathname === "/loop2") return to("https://hs.test/loop");
      if (u.pathname === "/to-http") return to("http://hs.test/hop/0");
      if (u.pathname === "/to-private") return to("https://private.test/hop/0");
      if (u.pathname === "/to-other") return to("https://other.test/hop/0", 307);
      if (u.pathname === "/post307") return to("/echo", 307);
      if (u.pathname === "/post302") return to("/echo", 302);
      if (u.pathname === "/echo") return new Response(`${req.method}:${await req.text()}`);
      return undefined;
    },
  });
  const { dial } = loopbackDial(hs.port);
  const resolver = scriptedResolver({
    "hs.test": ["8.8.8.8"],
    "other.test": ["8.8.4.4"],
    "private.test": ["192.168.1.1"],
  });
  const { outbound } = testOutbound({
    resolver,
    dial,
    caCerts: [hs.ca!.caCertPem],
    policy: policyAllowing(),
  });
  const get = (path: string, redirect?: RedirectPolicy, method: "GET" | "POST" = "GET") =>
    outbound.request({
      url: `https://hs.test${path}`,
      method,
      body: method === "POST" ? "payload" : undefined,
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
      redirect,
    });
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  try {
    const five = await get("/hop/5", WELL_KNOWN);
    assert.equal(text(five.body), "done");
    assert.equal(five.url, "https://hs.test/hop/0");
    await rejects(get("/hop/6", WELL_KNOWN), "redirect");
    await rejects(get("/loop", WELL_KNOWN), "redirect");
    await rejects(get("/to-http", WELL_KNOWN), "redirect");
    await rejects(get("/to-private", WELL_KNOWN), "blocked");
    const notFollowed = await get("/hop/1");
    assert.equal(notFollowed.status, 302);
    // Delayed-event policy: 307 same host keeps method and body; 302 is returned as is.
    assert.equal(text((await get("/post307", DELAYED, "POST")).body), "POST:payload");
    assert.equal((await get("/post302", DELAYED, "POST")).status, 302);
    await rejects(get("/to-other", DELAYED), "redirect");
    // Well-known policy turns a POST answered with 302 into a GET.
    assert.equal(text((await get("/post302", WELL_KNOWN, "POST")).body), "GET:");
  } finally {
    await outbound.close();
    await hs.close();
  }
});

/** A minimal upstream CONNECT proxy that records what it was asked and forwards to `port`. */
function startUpstreamProxy(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: string[] = [];
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        tasks.push(
          (async () => {
            const buf = new Uint8Array(4096);
            const n = await conn.read(buf);
            seen.push(new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0] ?? "");
            const inner = await Deno.connect({ hostname: "127.0.0.1", port });
            await writeAll(conn, new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n"));
            await splice(conn, inner);
          })().catch(() => {}),
        );
      }
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    seen,
    async close() {
      listener.close();
      await loop;
      await Promise.allSettled(tasks);
    },
  };
}

Deno.test("HTTPS_PROXY: guard runs first (local resolution), then the proxy connects by name", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { body: {} } });
  const upstream = startUpstreamProxy(hs.port);
  const resolver = scriptedResolver({ "hs.test": ["8.8.8.8"], "evil.test": ["10.0.0.1"] });
  const { outbound } = testOutbound({
    resolver,
    caCerts: [hs.ca!.caCertPem],
    policy: policyAllowing(),
    proxies: { httpsProxy: upstream.url, httpProxy: undefined, noProxy: [] },
  });
  try {
    const res = await outbound.request({
      url: "https://hs.test/.well-known/matrix/server",
      timeoutMs: 5000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(resolver.lookups, ["hs.test"]);
    assert.deepEqual(upstream.seen, ["CONNECT hs.test:443 HTTP/1.1"]);
    await rejects(
      outbound.request({
        url: "https://evil.test/",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: { serverName: "evil.test" },
      }),
      "blocked",
    );
    assert.equal(upstream.seen.length, 1, "a denied destination never reaches the proxy");
  } finally {
    await outbound.close();
    await upstream.close();
    await hs.close();
  }
});
