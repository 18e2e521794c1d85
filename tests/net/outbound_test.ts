import assert from "node:assert/strict";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { createTestCa } from "../fakes/tls.ts";
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

Deno.test("guarded request is pinned: TLS name and Host are the URL host, socket goes to the checked address", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { body: { ok: 1 } } });
  const { dial, dials } = loopbackDial(hs.port);
  const resolver = scriptedResolver({ "hs.test": ["127.0.0.1"] });
  const { outbound } = testOutbound({ resolver, dial, caCerts: [hs.ca!.caCertPem] });
  try {
    const res = await outbound.request({
      url: "https://hs.test/.well-known/matrix/server",
      timeoutMs: 10_000,
      maxBodyBytes: 64 * KIB,
      guard: GUARD,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(res.body)), { ok: 1 });
    assert.deepEqual(dials, ["127.0.0.1:443"]);
    assert.equal(hs.requests[0]?.authority, "hs.test");
    assert.equal(hs.requests[0]?.headers.get("user-agent")?.startsWith("lk-jwt-service/"), true);
    assert.equal(hs.requests[0]?.headers.get("accept"), "application/json");
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("connectTo sends to the given port while the URL keeps Host without port", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { body: {} } });
  const { dial, dials } = loopbackDial(hs.port);
  const resolver = scriptedResolver();
  const { outbound } = testOutbound({ resolver, dial, caCerts: [hs.ca!.caCertPem] });
  try {
    const res = await outbound.request({
      url: "https://hs.test/.well-known/matrix/server",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
      connectTo: { address: "127.0.0.1", port: 8448 },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(dials, ["127.0.0.1:8448"]);
    assert.deepEqual(resolver.lookups, [], "no resolution when the address is given");
    assert.equal(hs.requests[0]?.authority, "hs.test");
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("denied addresses are skipped with a WARN; none left = blocked, nothing dialed", async () => {
  const log = captureLogger();
  const { dial, dials } = loopbackDial(1);
  const resolver = scriptedResolver({ "hs.test": ["10.1.2.3", "169.254.169.254"] });
  const { outbound } = testOutbound({ resolver, dial, log, policy: policyAllowing() });
  try {
    const err = await rejects(
      outbound.request({
        url: "https://hs.test/x?access_token=SECRET",
        timeoutMs: 1000,
        maxBodyBytes: KIB,
        guard: GUARD,
      }),
      "blocked",
    );
    assert.ok(!err.message.includes("SECRET"));
    assert.deepEqual(dials, []);
    const warns = log.lines.filter((l) => l.level === "warn");
    assert.deepEqual(warns.map((w) => [w.msg, w.fields.address, w.fields.reason]), [
      ["destination not allowed", "10.1.2.3", "private"],
      ["destination not allowed", "169.254.169.254", "metadata"],
    ]);
    assert.equal(warns[0]?.fields.server_name, "hs.test");
  } finally {
    await outbound.close();
  }
});

Deno.test("only allowed addresses are used, in order", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { body: {} } });
  const { dial, dials } = loopbackDial(hs.port);
  const resolver = scriptedResolver({ "hs.test": ["10.0.0.7", "127.0.0.1"] });
  const { outbound } = testOutbound({
    resolver,
    dial,
    caCerts: [hs.ca!.caCertPem],
    policy: policyAllowing("127.0.0.0/8"),
  });
  try {
    const res = await outbound.request({
      url: "https://hs.test/.well-known/matrix/server",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(dials, ["127.0.0.1:443"]);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("DNS rebinding: the connection goes to the address that was checked, resolved once", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { body: {} } });
  // First answer public (passes the guard), later answers loopback (would be denied).
  const resolver = scriptedResolver({ "hs.test": [["8.8.8.8"], ["127.0.0.1"]] });
  const { dial, dials } = loopbackDial(hs.port);
  const { outbound } = testOutbound({
    resolver,
    dial,
    caCerts: [hs.ca!.caCertPem],
    policy: policyAllowing(),
  });
  try {
    const res = await outbound.request({
      url: "https://hs.test/.well-known/matrix/server",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(resolver.lookups, ["hs.test"]);
    assert.deepEqual(dials, ["8.8.8.8:443"]);
    // A second request re-resolves, gets the loopback answer and is refused.
    await rejects(
      outbound.request({
        url: "https://hs.test/y",
        timeoutMs: 1000,
        maxBodyBytes: KIB,
        guard: GUARD,
      }),
      "blocked",
    );
    assert.deepEqual(dials, ["8.8.8.8:443"]);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("a refused address moves on to the next one", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { body: {} } });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = closed.addr.port;
  closed.close();
  const { dial, dials } = loopbackDial((a) => (a === "8.8.4.4" ? deadPort : hs.port));
  const resolver = scriptedResolver({ "hs.test": ["8.8.4.4", "8.8.8.8"] });
  const { outbound } = testOutbound({ resolver, dial, caCerts: [hs.ca!.caCertPem] });
  try {
    const res = await outbound.request({
      url: "https://hs.test/.well-known/matrix/server",
      timeoutMs: 10_000,
      maxBodyBytes: KIB,
      guard: GUARD,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(dials, ["8.8.4.4:443", "8.8.8.8:443"]);
    // Only the refused one: kind connect, and the message names the address.
    resolver.hosts.set("dead.test", ["8.8.4.4"]);
    const err = await rejects(
      outbound.request({
        url: "https://dead.test/?access_token=SECRET",
        timeoutMs: 1000,
        maxBodyBytes: KIB,
        guard: { serverName: "dead.test" },
      }),
      "connect",
    );
    assert.match(err.message, /8\.8\.4\.4/);
    assert.ok(!err.message.includes("SECRET"));
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("TLS: untrusted issuer and wrong name fail with kind tls", async () => {
  const other = await createTestCa(await Deno.makeTempDir({ prefix: "lkjwt-other-ca-" }));
  const hs = await startFakeHomeserver({
    tls: { cert: other.leaf.certPem, key: other.leaf.keyPem },
  });
  const good = await createTestCa();
  const { dial } = loopbackDial(hs.port);
  const resolver = scriptedResolver({ "hs.test": ["127.0.0.1"], "wrong.example": ["127.0.0.1"] });
  const { outbound } = testOutbound({ resolver, dial, caCerts: [good.caCertPem] });
  try {
    await rejects(
      outbound.request({
        url: "https://hs.test/",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: GUARD,
      }),
      "tls",
    );
    assert.equal(hs.counts.requests, 0, "no request reaches the server");
  } finally {
    await outbound.close();
    await hs.close();
  }
  const hs2 = await startFakeHomeserver({ tls: true });
  const d2 = loopbackDial(hs2.port);
  const o2 = testOutbound({ resolver, dial: d2.dial, caCerts: [good.caCertPem] }).outbound;
  try {
    await rejects(
      o2.request({
        url: "https://wrong.example/",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: { serverName: "wrong.example" },
      }),
      "tls",
    );
  } finally {
    await o2.close();
    await hs2.close();
  }
});

Deno.test("unguarded requests use the plain client: no resolver, no guard", async () => {
  const hs = await startFakeHomeserver({ wellKnownClient: { body: { x: 1 } } });
  const resolver = scriptedResolver();
  const { outbound } = testOutbound({ resolver, policy: policyAllowing() });
  try {
    const res = await outbound.request({
      url: `${hs.url}/.well-known/matrix/client`,
      timeoutMs: 5000,
      maxBodyBytes: KIB,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(resolver.lookups, []);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("guarded plain-http requests are pinned too and share one kept-alive connection", async () => {
  const hs = await startFakeHomeserver({
    extraRoutes: async (req) =>
      new Response(`${req.method} ${new URL(req.url).pathname} ${await req.text()}`),
  });
  const { dial, dials } = loopbackDial(hs.port);
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["8.8.8.8"] }),
    dial,
  });
  try {
    for (let i = 0; i < 2; i++) {
      const res = await outbound.request({
        url: "http://hs.test/p?q=1",
        method: "POST",
        body: "b",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: GUARD,
      });
      assert.equal(new TextDecoder().decode(res.body), "POST /p b");
    }
    assert.deepEqual(dials, ["8.8.8.8:80"]);
    assert.equal(hs.counts.connections, 1);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("keep-alive: sequential requests to one target share one TLS connection", async () => {
  const hs = await startFakeHomeserver({ tls: true, wellKnownServer: { body: {} } });
  const { dial } = loopbackDial(hs.port);
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["127.0.0.1"] }),
    dial,
    caCerts: [hs.ca!.caCertPem],
  });
  try {
    for (let i = 0; i < 5; i++) {
      await outbound.request({
        url: "https://hs.test/.well-known/matrix/server",
        timeoutMs: 5000,
        maxBodyBytes: KIB,
        guard: GUARD,
      });
    }
    assert.equal(hs.counts.connections, 1);
    assert.equal(hs.count("/.well-known/matrix/server"), 5);
  } finally {
    await outbound.close();
    await hs.close();
  }
});

Deno.test("close() closes every connection; later requests fail", async () => {
  const { outbound } = testOutbound({ resolver: scriptedResolver() });
  await outbound.close();
  await rejects(
    outbound.request({ url: "https://hs.test/", timeoutMs: 1000, maxBodyBytes: 1, guard: GUARD }),
    "aborted",
  );
});
