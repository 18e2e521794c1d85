import assert from "node:assert/strict";
import { type ServerName, serverName } from "../../lib/ids.ts";
import { createCsApiResolver, normaliseBaseUrl } from "../../lib/matrix/cs_api.ts";
import { parseCidr } from "../../lib/net/ip.ts";
import { createOutboundPolicy } from "../../lib/net/ssrf.ts";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { captureLogger, loopbackDial, scriptedResolver, testOutbound } from "../net/_helpers.ts";
import { fakeOutbound, type Scripted } from "./_helpers.ts";

const WK = "/.well-known/matrix/client";
const MIN = 60_000;
const HOUR = 60 * MIN;
const sn = (s: string): ServerName => serverName(s);

function setup(answer: Scripted, overrides: Record<string, string> = {}) {
  const clock = new ManualClock();
  const log = captureLogger();
  const state = { answer };
  const outbound = fakeOutbound(() => state.answer);
  const cs = createCsApiResolver({
    outbound,
    overrides: new Map(Object.entries(overrides)),
    clock,
    log,
  });
  return { clock, log, outbound, cs, state };
}

const ok = (base: string): Scripted => ({
  status: 200,
  body: { "m.homeserver": { base_url: base } },
});

Deno.test("overrides: exact key incl. port, not guarded, no network", async () => {
  const s = setup({ status: 500 }, { "127.0.0.1:8448": "http://127.0.0.1:8008/" });
  assert.deepEqual(await s.cs.resolve(sn("127.0.0.1:8448")), {
    baseUrl: "http://127.0.0.1:8008",
    guarded: false,
  });
  assert.equal(s.outbound.requests.length, 0);
  assert.equal(await s.cs.resolve(sn("127.0.0.1")), undefined, "no prefix/host-only match");
});

Deno.test("discovery request: server name verbatim with port, guarded, 10 s, 64 KiB, https redirects ≤5", async () => {
  const s = setup(ok("https://matrix.hs.test"));
  assert.deepEqual(await s.cs.resolve(sn("hs.test:8448")), {
    baseUrl: "https://matrix.hs.test",
    guarded: true,
  });
  const req = s.outbound.requests[0]!;
  assert.equal(req.url, "https://hs.test:8448/.well-known/matrix/client");
  assert.deepEqual(req.guard, { serverName: "hs.test:8448" });
  assert.equal(req.timeoutMs, 10_000);
  assert.equal(req.maxBodyBytes, 65_536);
  assert.equal(req.redirect?.maxHops, 5);
  assert.equal(req.redirect?.httpsOnly, true);
});

Deno.test("outcomes: 404, other non-200, not an object, base_url missing/empty/not a string/http", async () => {
  const bad: Scripted[] = [
    { status: 404 },
    { status: 500 },
    { status: 204 },
    { status: 200, body: "nope" },
    { status: 200, body: ["x"] },
    { status: 200, body: {} },
    { status: 200, body: { "m.homeserver": "https://x" } },
    { status: 200, body: { "m.homeserver": { base_url: "" } } },
    { status: 200, body: { "m.homeserver": { base_url: 5 } } },
    { status: 200, body: { "m.homeserver": { base_url: "http://hs.test" } } },
    { status: 200, body: { "m.homeserver": { base_url: "/relative" } } },
    { fail: "tls" },
    { fail: "too_large" },
    { fail: "blocked" },
  ];
  for (const answer of bad) {
    const s = setup(answer);
    assert.equal(await s.cs.resolve(sn("hs.test")), undefined, JSON.stringify(answer));
  }
});

Deno.test("base_url validation: query and fragment dropped, trailing slashes removed, path kept", () => {
  assert.equal(normaliseBaseUrl("https://hs.test/"), "https://hs.test");
  assert.equal(
    normaliseBaseUrl("https://hs.test:8443/prefix/?x=1#f"),
    "https://hs.test:8443/prefix",
  );
  assert.equal(normaliseBaseUrl("https://hs.test/a/b//"), "https://hs.test/a/b");
  assert.equal(normaliseBaseUrl("http://hs.test"), undefined);
  assert.equal(normaliseBaseUrl("hs.test"), undefined);
  assert.equal(normaliseBaseUrl("https://user:pw@hs.test"), undefined);
});

Deno.test("cache: positive 4 h, negative 60 s", async () => {
  const s = setup(ok("https://a.hs.test"));
  await s.cs.resolve(sn("hs.test"));
  await s.clock.advance(4 * HOUR - 1);
  await s.cs.resolve(sn("hs.test"));
  assert.equal(s.outbound.count(WK), 1);
  await s.clock.advance(1);
  await s.cs.resolve(sn("hs.test"));
  assert.equal(s.outbound.count(WK), 2);

  const n = setup({ status: 404 });
  assert.equal(await n.cs.resolve(sn("hs.test")), undefined);
  await n.clock.advance(MIN - 1);
  assert.equal(await n.cs.resolve(sn("hs.test")), undefined);
  assert.equal(n.outbound.count(WK), 1);
  await n.clock.advance(1);
  n.state.answer = ok("https://b.hs.test");
  assert.deepEqual(await n.cs.resolve(sn("hs.test")), {
    baseUrl: "https://b.hs.test",
    guarded: true,
  });
});

Deno.test("stale fallback: an expired answer younger than 24 h is used (WARN), older is not", async () => {
  const s = setup(ok("https://a.hs.test"));
  await s.cs.resolve(sn("hs.test"));
  await s.clock.advance(5 * HOUR);
  s.state.answer = { fail: "connect" };
  assert.deepEqual(await s.cs.resolve(sn("hs.test")), {
    baseUrl: "https://a.hs.test",
    guarded: true,
  });
  assert.ok(s.log.lines.some((l) => l.level === "warn"));
  assert.deepEqual(await s.cs.resolve(sn("hs.test")), {
    baseUrl: "https://a.hs.test",
    guarded: true,
  });
  assert.equal(s.outbound.count(WK), 2, "negative entry for 60 s, still serving the stale value");
  await s.clock.advance(19 * HOUR);
  assert.equal(await s.cs.resolve(sn("hs.test")), undefined);
});

Deno.test("concurrent discoveries share one fetch", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const clock = new ManualClock();
  const outbound = fakeOutbound(async () => {
    await gate;
    return ok("https://a.hs.test");
  });
  const cs = createCsApiResolver({ outbound, overrides: new Map(), clock, log: captureLogger() });
  const all = Promise.all(Array.from({ length: 5 }, () => cs.resolve(sn("hs.test"))));
  await clock.flush();
  release();
  assert.equal((await all).every((r) => r?.baseUrl === "https://a.hs.test"), true);
  assert.equal(outbound.count(WK), 1);
});

Deno.test("end to end: guarded redirects through the real outbound", async () => {
  const hs = await startFakeHomeserver({
    tls: true,
    extraRoutes: (req) => {
      const p = new URL(req.url).pathname;
      if (p === WK) {
        return new Response(null, {
          status: 301,
          headers: { location: "https://matrix.hs.test/wk" },
        });
      }
      if (p === "/wk") {
        return Response.json({ "m.homeserver": { base_url: "https://matrix.hs.test/" } });
      }
      return undefined;
    },
  });
  const { dial } = loopbackDial(hs.port);
  const policy = createOutboundPolicy({
    fullAccess: { wildcard: true, explicit: new Set(), defaulted: true },
    csApiOverrides: new Map(),
    outboundAllow: { cidrs: [parseCidr("8.8.0.0/16")!], hosts: new Set() },
  });
  const resolver = scriptedResolver({ "hs.test": ["8.8.8.8"], "matrix.hs.test": ["10.9.9.9"] });
  const { outbound, clock } = testOutbound({ resolver, dial, policy, caCerts: [hs.ca!.caCertPem] });
  const cs = createCsApiResolver({ outbound, overrides: new Map(), clock, log: captureLogger() });
  try {
    assert.equal(
      await cs.resolve(sn("hs.test")),
      undefined,
      "redirect hop to a private address is refused",
    );
    resolver.hosts.set("matrix.hs.test", ["8.8.4.4"]);
    await (clock as ManualClock).advance(MIN);
    assert.deepEqual(await cs.resolve(sn("hs.test")), {
      baseUrl: "https://matrix.hs.test",
      guarded: true,
    });
  } finally {
    await outbound.close();
    await hs.close();
  }
});
