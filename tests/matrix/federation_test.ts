import assert from "node:assert/strict";
import {
  createFederationDiscovery,
  type Destination,
  DiscoveryError,
  orderSrv,
  wellKnownLifetimeMs,
} from "../../lib/matrix/federation.ts";
import type { SrvRecord } from "../../lib/net/dns.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { captureLogger, scriptedResolver } from "../net/_helpers.ts";
import { fakeOutbound, type Scripted } from "./_helpers.ts";

const WK = "/.well-known/matrix/server";
const MIN = 60_000;
const HOUR = 60 * MIN;

function setup(
  wellKnown: Record<string, Scripted> = {},
  hosts: Parameters<typeof scriptedResolver>[0] = {},
  srvs: Parameters<typeof scriptedResolver>[1] = {},
) {
  const clock = new ManualClock();
  const log = captureLogger();
  const outbound = fakeOutbound((req) => {
    const host = new URL(req.url).host;
    return wellKnown[host] ?? { status: 404 };
  });
  const resolver = scriptedResolver(hosts, srvs);
  const discovery = createFederationDiscovery({ outbound, resolver, clock, log });
  return { clock, log, outbound, resolver, discovery, wellKnown };
}

const dest = (
  address: string,
  port: number,
  hostHeader: string,
  tlsName: string,
  resolvedName?: string,
): Destination => ({
  address,
  port,
  hostHeader,
  tlsName,
  ...(resolvedName ? { resolvedName } : {}),
});

const srv = (target: string, port: number, priority = 10, weight = 0): SrvRecord => ({
  priority,
  weight,
  port,
  target,
});

Deno.test("case 1: IP literals need no well-known and no DNS", async () => {
  const { discovery, outbound, resolver } = setup();
  assert.deepEqual(await discovery.resolve("1.2.3.4"), [
    dest("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4"),
  ]);
  assert.deepEqual(await discovery.resolve("1.2.3.4:8000"), [
    dest("1.2.3.4", 8000, "1.2.3.4:8000", "1.2.3.4"),
  ]);
  assert.deepEqual(await discovery.resolve("[2001:db8::1]:8448"), [
    dest("2001:db8::1", 8448, "[2001:db8::1]:8448", "2001:db8::1"),
  ]);
  assert.equal(outbound.requests.length, 0);
  assert.equal(resolver.lookups.length + resolver.srvQueries.length, 0);
});

Deno.test("case 2: explicit port → A/AAAA with that port, Host host:port, no well-known", async () => {
  const { discovery, outbound } = setup({}, { "hs.test": ["8.8.8.8", "2606:4700::1"] });
  assert.deepEqual(await discovery.resolve("hs.test:8000"), [
    dest("8.8.8.8", 8000, "hs.test:8000", "hs.test", "hs.test"),
    dest("2606:4700::1", 8000, "hs.test:8000", "hs.test", "hs.test"),
  ]);
  assert.equal(outbound.requests.length, 0);
});

Deno.test("case 3a: m.server IP literal (with and without port)", async () => {
  const { discovery } = setup({
    "hs.test": { status: 200, body: { "m.server": "5.6.7.8:9000" } },
    "v6.test": { status: 200, body: { "m.server": "[2606:4700::5]" } },
  });
  assert.deepEqual(await discovery.resolve("hs.test"), [
    dest("5.6.7.8", 9000, "5.6.7.8:9000", "5.6.7.8"),
  ]);
  assert.deepEqual(await discovery.resolve("v6.test"), [
    dest("2606:4700::5", 8448, "[2606:4700::5]", "2606:4700::5"),
  ]);
});

Deno.test("case 3b: delegated name with port → A/AAAA, no SRV", async () => {
  const { discovery, resolver } = setup(
    { "hs.test": { status: 200, body: { "m.server": "delegated.test:9000" } } },
    { "delegated.test": ["8.8.8.8"] },
  );
  assert.deepEqual(await discovery.resolve("hs.test"), [
    dest("8.8.8.8", 9000, "delegated.test:9000", "delegated.test", "delegated.test"),
  ]);
  assert.deepEqual(resolver.srvQueries, []);
});

Deno.test("case 3c: delegated name → _matrix-fed._tcp SRV targets, Host = delegated name", async () => {
  const { discovery, resolver, outbound } = setup(
    { "hs.test": { status: 200, body: { "m.server": "delegated.test" } } },
    { "fed1.delegated.test": ["8.8.8.8"], "fed2.delegated.test": ["8.8.4.4"] },
    {
      "_matrix-fed._tcp.delegated.test": [
        srv("fed2.delegated.test", 8449, 20),
        srv("fed1.delegated.test", 8448, 10),
      ],
      "_matrix._tcp.delegated.test": [srv("old.delegated.test", 1)],
    },
  );
  assert.deepEqual(await discovery.resolve("hs.test"), [
    dest("8.8.8.8", 8448, "delegated.test", "delegated.test", "fed1.delegated.test"),
    dest("8.8.4.4", 8449, "delegated.test", "delegated.test", "fed2.delegated.test"),
  ]);
  assert.deepEqual(resolver.srvQueries, ["_matrix-fed._tcp.delegated.test"]);
  assert.equal(outbound.count(WK), 1, "only one level of well-known");
});

Deno.test("case 3d: falls back to the deprecated _matrix._tcp SRV", async () => {
  const { discovery, resolver } = setup(
    { "hs.test": { status: 200, body: { "m.server": "delegated.test" } } },
    { "old.delegated.test": ["8.8.8.8"] },
    { "_matrix._tcp.delegated.test": [srv("old.delegated.test.", 8500)] },
  );
  assert.deepEqual(await discovery.resolve("hs.test"), [
    dest("8.8.8.8", 8500, "delegated.test", "delegated.test", "old.delegated.test"),
  ]);
  assert.deepEqual(resolver.srvQueries, [
    "_matrix-fed._tcp.delegated.test",
    "_matrix._tcp.delegated.test",
  ]);
});

Deno.test("case 3e: no SRV → A/AAAA(delegated):8448", async () => {
  const { discovery } = setup(
    { "hs.test": { status: 200, body: { "m.server": "delegated.test" } } },
    { "delegated.test": ["8.8.8.8"], "hs.test": ["1.1.1.1"] },
  );
  assert.deepEqual(await discovery.resolve("hs.test"), [
    dest("8.8.8.8", 8448, "delegated.test", "delegated.test", "delegated.test"),
  ]);
});

Deno.test("cases 4–6: invalid well-known → SRV on the hostname, then A/AAAA:8448", async () => {
  const s4 = setup({}, { "fed.hs.test": ["8.8.8.8"] }, {
    "_matrix-fed._tcp.hs.test": [srv("fed.hs.test", 443)],
  });
  assert.deepEqual(await s4.discovery.resolve("hs.test"), [
    dest("8.8.8.8", 443, "hs.test", "hs.test", "fed.hs.test"),
  ]);
  const s5 = setup({}, { "old.hs.test": ["8.8.8.8"] }, {
    "_matrix._tcp.hs.test": [srv("old.hs.test", 8500)],
  });
  assert.deepEqual(await s5.discovery.resolve("hs.test"), [
    dest("8.8.8.8", 8500, "hs.test", "hs.test", "old.hs.test"),
  ]);
  const s6 = setup({}, { "hs.test": ["8.8.8.8"] });
  assert.deepEqual(await s6.discovery.resolve("hs.test"), [
    dest("8.8.8.8", 8448, "hs.test", "hs.test", "hs.test"),
  ]);
  assert.deepEqual(s6.resolver.srvQueries, ["_matrix-fed._tcp.hs.test", "_matrix._tcp.hs.test"]);
});

Deno.test("SRV target '.' means no service; SERVFAIL is logged and means next step", async () => {
  const s = setup({}, { "hs.test": ["8.8.8.8"] }, {
    "_matrix-fed._tcp.hs.test": [srv(".", 8448)],
    "_matrix._tcp.hs.test": "failure",
  });
  assert.deepEqual(await s.discovery.resolve("hs.test"), [
    dest("8.8.8.8", 8448, "hs.test", "hs.test", "hs.test"),
  ]);
  assert.ok(s.log.lines.some((l) => l.level === "warn" && l.msg === "SRV lookup failed"));
});

Deno.test("every invalid well-known variant falls back to case 4 (well-known fetch rules)", async () => {
  const variants: Scripted[] = [
    { status: 404 },
    { status: 500 },
    { status: 201, body: { "m.server": "delegated.test" } },
    { status: 301 },
    { status: 200, body: "not json" },
    { status: 200, body: ["m.server"] },
    { status: 200, body: {} },
    { status: 200, body: { "m.server": "" } },
    { status: 200, body: { "m.server": 5 } },
    { status: 200, body: { "m.server": "bad name!" } },
    { status: 200, body: { "m.server": "delegated.test:0" } },
    { fail: "too_large" },
    { fail: "tls" },
    { fail: "timeout" },
    { fail: "blocked" },
    { fail: "redirect" },
  ];
  for (const v of variants) {
    const s = setup({ "hs.test": v }, { "hs.test": ["8.8.8.8"], "delegated.test": ["1.1.1.1"] });
    assert.deepEqual(await s.discovery.resolve("hs.test"), [
      dest("8.8.8.8", 8448, "hs.test", "hs.test", "hs.test"),
    ], JSON.stringify(v));
  }
});

Deno.test("well-known request: https URL of the hostname, 10 s, 64 KiB, guarded, ≤5 https redirects", async () => {
  const s = setup({}, { "hs.test": ["8.8.8.8"] });
  await s.discovery.resolve("hs.test");
  const req = s.outbound.requests[0]!;
  assert.equal(req.url, "https://hs.test/.well-known/matrix/server");
  assert.equal(req.timeoutMs, 10_000);
  assert.equal(req.maxBodyBytes, 65_536);
  assert.deepEqual(req.guard, { serverName: "hs.test" });
  assert.equal(req.redirect?.maxHops, 5);
  assert.equal(req.redirect?.httpsOnly, true);
});

Deno.test("no destination → DiscoveryError dns naming what was tried; bad name → parse", async () => {
  const s = setup({ "hs.test": { status: 503 } });
  await assert.rejects(s.discovery.resolve("hs.test"), (err: unknown) => {
    assert.ok(err instanceof DiscoveryError);
    assert.equal(err.stage, "dns");
    assert.match(err.message, /well-known: status 503/);
    assert.match(err.message, /A\/AAAA hs\.test/);
    return true;
  });
  await assert.rejects(s.discovery.resolve("bad name"), (err: unknown) => {
    assert.ok(err instanceof DiscoveryError);
    assert.equal(err.stage, "parse");
    return true;
  });
});

Deno.test("wellKnownLifetimeMs: Cache-Control, Expires, default 24 h, clamp [5 min, 48 h]", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  const life = (h: Record<string, string>) => wellKnownLifetimeMs(new Headers(h), now);
  assert.equal(life({}), 24 * HOUR);
  assert.equal(life({ "cache-control": "max-age=3600" }), HOUR);
  assert.equal(life({ "cache-control": "public, max-age=60" }), 5 * MIN);
  assert.equal(life({ "cache-control": "max-age=999999999" }), 48 * HOUR);
  assert.equal(life({ "cache-control": "no-store" }), 5 * MIN);
  assert.equal(life({ "cache-control": "no-cache, max-age=7200" }), 5 * MIN);
  assert.equal(life({ expires: "Thu, 01 Jan 2026 02:00:00 GMT" }), 2 * HOUR);
  assert.equal(life({ expires: "0" }), 5 * MIN);
  assert.equal(
    life({ "cache-control": "max-age=7200", expires: "Thu, 01 Jan 2026 00:00:01 GMT" }),
    2 * HOUR,
  );
});

Deno.test("well-known cache: positive lifetime from headers, then refetch", async () => {
  const s = setup({
    "hs.test": {
      status: 200,
      body: { "m.server": "1.2.3.4" },
      headers: { "cache-control": "max-age=600" },
    },
  });
  await s.discovery.resolve("hs.test");
  await s.clock.advance(10 * MIN - 1);
  await s.discovery.resolve("hs.test");
  assert.equal(s.outbound.count(WK), 1);
  await s.clock.advance(1);
  await s.discovery.resolve("hs.test");
  assert.equal(s.outbound.count(WK), 2);
});

Deno.test("well-known cache: negative back-off 2, 4, 8 … min capped at 1 h; success resets", async () => {
  const s = setup({}, { "hs.test": ["8.8.8.8"] });
  const fetches = () => s.outbound.count(WK);
  await s.discovery.resolve("hs.test");
  let expected = 1;
  for (const minutes of [2, 4, 8, 16, 32, 60, 60]) {
    await s.clock.advance(minutes * MIN - 1);
    await s.discovery.resolve("hs.test");
    assert.equal(fetches(), expected, `still cached before ${minutes} min`);
    await s.clock.advance(1);
    await s.discovery.resolve("hs.test");
    expected++;
    assert.equal(fetches(), expected, `refetched after ${minutes} min`);
  }
  s.wellKnown["hs.test"] = { status: 200, body: { "m.server": "1.2.3.4" } };
  await s.clock.advance(60 * MIN);
  await s.discovery.resolve("hs.test");
  s.wellKnown["hs.test"] = { status: 404 };
  await s.clock.advance(24 * HOUR);
  await s.discovery.resolve("hs.test"); // fails (404): negative, first step again
  const after = fetches();
  await s.clock.advance(2 * MIN);
  await s.discovery.resolve("hs.test");
  assert.equal(fetches(), after + 1);
});

Deno.test("well-known cache: stale answer reused on 5xx/transport failure for up to 1 h after expiry", async () => {
  const s = setup(
    {
      "hs.test": {
        status: 200,
        body: { "m.server": "1.2.3.4" },
        headers: { "cache-control": "max-age=300" },
      },
    },
    { "hs.test": ["8.8.8.8"] },
  );
  const addr = async () => (await s.discovery.resolve("hs.test"))[0]!.address;
  assert.equal(await addr(), "1.2.3.4");
  await s.clock.advance(5 * MIN);
  s.wellKnown["hs.test"] = { status: 503 };
  assert.equal(await addr(), "1.2.3.4", "stale on 5xx");
  assert.ok(s.log.lines.some((l) => l.level === "warn"));
  const n = s.outbound.count(WK);
  await s.clock.advance(2 * MIN - 1);
  await addr();
  assert.equal(s.outbound.count(WK), n, "retry only after 2 min");
  await s.clock.advance(1);
  s.wellKnown["hs.test"] = { fail: "connect" };
  assert.equal(await addr(), "1.2.3.4", "stale on transport error");
  await s.clock.advance(60 * MIN);
  assert.equal(await addr(), "8.8.8.8", "more than 1 h after expiry: case 4");
});

Deno.test("well-known cache: a 404 refresh drops the old answer", async () => {
  const s = setup(
    {
      "hs.test": {
        status: 200,
        body: { "m.server": "1.2.3.4" },
        headers: { "cache-control": "max-age=300" },
      },
    },
    { "hs.test": ["8.8.8.8"] },
  );
  await s.discovery.resolve("hs.test");
  await s.clock.advance(5 * MIN);
  s.wellKnown["hs.test"] = { status: 404 };
  assert.equal((await s.discovery.resolve("hs.test"))[0]!.address, "8.8.8.8");
});

Deno.test("concurrent resolutions share one well-known fetch; cache is bounded (LRU)", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const clock = new ManualClock();
  const outbound = fakeOutbound(async () => {
    await gate;
    return { status: 200, body: { "m.server": "1.2.3.4" } };
  });
  const discovery = createFederationDiscovery({
    outbound,
    resolver: scriptedResolver(),
    clock,
    log: captureLogger(),
    maxEntries: 2,
  });
  const all = Promise.all([1, 2, 3, 4, 5].map(() => discovery.resolve("hs.test")));
  await clock.flush();
  release();
  assert.equal((await all).length, 5);
  assert.equal(outbound.count(WK), 1);
  await discovery.resolve("a.test");
  await discovery.resolve("b.test"); // evicts hs.test
  await discovery.resolve("hs.test");
  assert.equal(outbound.requests.filter((r) => r.url.startsWith("https://hs.test/")).length, 2);
});

Deno.test("orderSrv: ascending priority, weighted random within a priority (RFC 2782)", () => {
  const recs = [
    srv("p20", 1, 20, 0),
    srv("a", 1, 10, 10),
    srv("b", 1, 10, 30),
    srv("zero", 1, 10, 0),
  ];
  // Sum 40 (+1). random 0 → pick 0 → zero-weight record first.
  const seq = (values: number[]) => () => values.shift() ?? 0;
  assert.deepEqual(orderSrv(recs, seq([0, 0, 0])).map((r) => r.target), ["zero", "a", "b", "p20"]);
  // random 0.99 → pick 40 → "b" (running 0, 10, 40); then among zero, a: pick floor(0.99*11)=10 → "a".
  assert.deepEqual(orderSrv(recs, seq([0.99, 0.99, 0])).map((r) => r.target), [
    "b",
    "a",
    "zero",
    "p20",
  ]);
  // Weight matters: over many draws the heavier record comes first about 3/4 of the time.
  let bFirst = 0;
  for (let i = 0; i < 400; i++) {
    const first = orderSrv([srv("a", 1, 1, 10), srv("b", 1, 1, 30)], seq([(i + 0.5) / 400]))[0]!;
    if (first.target === "b") bFirst++;
  }
  assert.ok(bFirst > 250 && bFirst < 350, String(bFirst));
});
