/**
 * The outbound client's built-in HTTP/1.1 path (direct POSTs: the delayed-event calls of
 * delegation.md §4) keeps every rule of openid-and-discovery.md §8.
 */
import assert from "node:assert/strict";
import { splice, writeAll } from "../support/pipe.ts";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { createTestCa } from "../fakes/tls.ts";
import { reply, startRawServer } from "./_raw_server.ts";
import {
  captureLogger,
  loopbackDial,
  policyAllowing,
  rejectsKind as rejects,
  scriptedResolver,
  testOutbound,
} from "./_helpers.ts";

const GUARD = { serverName: "hs.test" };
const KIB = 1024;
const PATH = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_a%2Fb/restart";
const HEADERS = { "Content-Type": "application/json" };

function echoRoutes(bodies: string[]) {
  return async (req: Request) => {
    bodies.push(`${req.method} ${await req.text()}`);
    return Response.json({});
  };
}

Deno.test("built-in POST, guarded https: pinned to the checked address, URL host as TLS name and Host, kept alive", async () => {
  const bodies: string[] = [];
  const hs = await startFakeHomeserver({ tls: true, extraRoutes: echoRoutes(bodies) });
  const { dial, dials } = loopbackDial(hs.port);
  const resolver = scriptedResolver({ "hs.test": ["127.0.0.1"] });
  const { outbound } = testOutbound({ resolver, dial, caCerts: [hs.ca!.caCertPem] });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await outbound.request({
        url: `https://hs.test${PATH}`,
        method: "POST",
        body: "{}",
        headers: HEADERS,
        timeoutMs: 5000,
        maxBodyBytes: 64 * KIB,
        guard: GUARD,
      });
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(new TextDecoder().decode(res.body)), {});
    }
    assert.deepEqual(resolver.lookups, ["hs.test", "hs.test", "hs.test"], "guarded every time");
    assert.deepEqual(dials, ["127.0.0.1:443"], "one pinned connection, reused");
    assert.equal(hs.counts.connections, 1);
    assert.deepEqual(bodies, ["POST {}", "POST {}", "POST {}"]);
    const seen = hs.requests[0]!;
    assert.equal(
      seen.path,
      "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_a%2Fb/restart",
    );
    assert.equal(seen.authority, "hs.test");
    assert.equal(seen.headers.get("content-type"), "application/json");
    assert.equal(seen.headers.get("accept"), "application/json");
    assert.equal(seen.headers.get("user-agent")?.startsWith("lk-jwt-service/"), true);
    assert.equal(seen.headers.get("authorization"), null);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("built-in POST, unguarded (override base): no resolver, no guard, one kept-alive connection", async () => {
  const bodies: string[] = [];
  const hs = await startFakeHomeserver({ extraRoutes: echoRoutes(bodies) });
  const resolver = scriptedResolver();
  const { outbound } = testOutbound({ resolver, policy: policyAllowing() });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await outbound.request({
        url: `${hs.url}/prefix${PATH}`,
        method: "POST",
        body: "{}",
        headers: HEADERS,
        timeoutMs: 5000,
        maxBodyBytes: KIB,
      });
      assert.equal(res.status, 200);
      assert.equal(res.url, `${hs.url}/prefix${PATH}`);
    }
    assert.deepEqual(resolver.lookups, []);
    assert.equal(hs.counts.connections, 1);
    assert.equal(bodies.length, 3);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("built-in POST: Host is always the URL's, given headers win over defaults, no header injection", async () => {
  const server = startRawServer(() => ({ send: reply(200, "{}") }));
  const { outbound } = testOutbound({ resolver: scriptedResolver() });
  const url = `http://127.0.0.1:${server.port}${PATH}`;
  try {
    await outbound.request({
      url,
      method: "POST",
      body: "{}",
      headers: { "Host": "evil.test", "Accept": "text/plain", "X-Extra": " v " },
      timeoutMs: 5000,
      maxBodyBytes: KIB,
    });
    const seen = server.requests[0]!;
    assert.equal(seen.headers.get("host"), `127.0.0.1:${server.port}`);
    assert.equal(seen.headers.get("accept"), "text/plain");
    assert.equal(seen.headers.get("x-extra"), "v");
    assert.equal(seen.headers.get("user-agent")?.startsWith("lk-jwt-service/"), true);
    assert.equal(seen.headers.get("content-length"), "2");
    const invalid: Record<string, string>[] = [{ "X-Evil": "a\r\nInjected: 1" }, {
      "Bad Name": "x",
    }];
    for (const headers of invalid) {
      await assert.rejects(
        outbound.request({
          url,
          method: "POST",
          body: "{}",
          headers,
          timeoutMs: 5000,
          maxBodyBytes: KIB,
        }),
        TypeError,
      );
    }
    assert.equal(server.requests.length, 1, "nothing sent for invalid headers");
  } finally {
    await outbound.close();
    await server.close();
  }
});

Deno.test("built-in POST: a kept-alive connection never bypasses the guard (DNS rebinding)", async () => {
  const hs = await startFakeHomeserver({ extraRoutes: () => Response.json({}) });
  const resolver = scriptedResolver({ "hs.test": [["8.8.8.8"], ["127.0.0.1"]] });
  const log = captureLogger();
  const { dial, dials } = loopbackDial(hs.port);
  const { outbound } = testOutbound({ resolver, dial, log, policy: policyAllowing() });
  const send = () =>
    outbound.request({
      url: `http://hs.test${PATH}`,
      method: "POST",
      body: "{}",
      timeoutMs: 5000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
  try {
    assert.equal((await send()).status, 200);
    await rejects(send(), "blocked");
    assert.deepEqual(dials, ["8.8.8.8:80"]);
    assert.equal(hs.counts.requests, 1, "the blocked request was not sent on the open connection");
    assert.equal(log.lines.some((l) => l.msg === "destination not allowed"), true);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("built-in POST: a refused address moves on to the next; only refused = connect naming it", async () => {
  const hs = await startFakeHomeserver({ extraRoutes: () => Response.json({}) });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = closed.addr.port;
  closed.close();
  const { dial, dials } = loopbackDial((a) => (a === "8.8.4.4" ? deadPort : hs.port));
  const resolver = scriptedResolver({
    "hs.test": ["8.8.4.4", "8.8.8.8"],
    "dead.test": ["8.8.4.4"],
  });
  const { outbound } = testOutbound({ resolver, dial });
  try {
    const res = await outbound.request({
      url: `http://hs.test${PATH}`,
      method: "POST",
      body: "{}",
      timeoutMs: 5000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(dials, ["8.8.4.4:80", "8.8.8.8:80"]);
    const err = await rejects(
      outbound.request({
        url: `http://dead.test${PATH}?access_token=SECRET`,
        method: "POST",
        body: "{}",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: { serverName: "dead.test" },
      }),
      "connect",
    );
    assert.match(err.message, /connect to 8\.8\.4\.4:80 failed/);
    assert.equal(err.address, "8.8.4.4");
    assert.ok(!err.message.includes("SECRET"), err.message);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("built-in POST: untrusted certificate or wrong name = tls, nothing reaches the server", async () => {
  const other = await createTestCa(await Deno.makeTempDir({ prefix: "lkjwt-other-ca-" }));
  const good = await createTestCa();
  const hs = await startFakeHomeserver({
    tls: { cert: other.leaf.certPem, key: other.leaf.keyPem },
  });
  const hs2 = await startFakeHomeserver({ tls: true });
  const resolver = scriptedResolver({ "hs.test": ["127.0.0.1"], "wrong.example": ["127.0.0.1"] });
  const a = testOutbound({ resolver, dial: loopbackDial(hs.port).dial, caCerts: [good.caCertPem] });
  const b = testOutbound({
    resolver,
    dial: loopbackDial(hs2.port).dial,
    caCerts: [good.caCertPem],
  });
  try {
    await rejects(
      a.outbound.request({
        url: `https://hs.test${PATH}`,
        method: "POST",
        body: "{}",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: GUARD,
      }),
      "tls",
    );
    assert.equal(hs.counts.requests, 0);
    await rejects(
      b.outbound.request({
        url: `https://wrong.example${PATH}`,
        method: "POST",
        body: "{}",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: { serverName: "wrong.example" },
      }),
      "tls",
    );
    assert.equal(hs2.counts.requests, 0);
  } finally {
    await a.outbound.close();
    await b.outbound.close();
    await hs.close();
    await hs2.close();
  }
});

Deno.test("built-in POST: with HTTPS_PROXY the POST goes through the proxy (after the guard)", async () => {
  const hs = await startFakeHomeserver({ tls: true, extraRoutes: () => Response.json({}) });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: string[] = [];
  const tunnels: Promise<void>[] = [];
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        tunnels.push(
          (async () => {
            const buf = new Uint8Array(4096);
            const n = await conn.read(buf);
            seen.push(new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0] ?? "");
            const inner = await Deno.connect({ hostname: "127.0.0.1", port: hs.port });
            await writeAll(conn, new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n"));
            await splice(conn, inner);
          })().catch(() => {}),
        );
      }
    } catch {
      // Closed.
    }
  })();
  const resolver = scriptedResolver({ "hs.test": ["8.8.8.8"] });
  const { outbound } = testOutbound({
    resolver,
    caCerts: [hs.ca!.caCertPem],
    proxies: {
      httpsProxy: `http://127.0.0.1:${listener.addr.port}`,
      httpProxy: undefined,
      noProxy: [],
    },
  });
  try {
    const res = await outbound.request({
      url: `https://hs.test${PATH}`,
      method: "POST",
      body: "{}",
      timeoutMs: 5_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(resolver.lookups, ["hs.test"]);
    assert.deepEqual(seen, ["CONNECT hs.test:443 HTTP/1.1"]);
  } finally {
    await outbound.close();
    listener.close();
    await loop;
    await Promise.allSettled(tunnels);
    await hs.close();
  }
});
