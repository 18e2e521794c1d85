import assert from "node:assert/strict";
import { Secret, type ServerName, serverName } from "../../lib/ids.ts";
import { createFederationDiscovery } from "../../lib/matrix/federation.ts";
import {
  createOpenIdVerifier,
  OpenIdError,
  type OpenIdStage,
  subMatchesServer,
} from "../../lib/matrix/openid.ts";
import { parseCidr } from "../../lib/net/ip.ts";
import { createOutboundPolicy } from "../../lib/net/ssrf.ts";
import { startFakeHomeserver, USERINFO_PATH } from "../fakes/homeserver.ts";
import { createTestCa } from "../fakes/tls.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { captureLogger, loopbackDial, scriptedResolver, testOutbound } from "../net/_helpers.ts";

const token = (t: string) => new Secret("openid_token", t);
const sn = (s: string): ServerName => serverName(s);

function policy(opts: { explicit?: string[]; cidrs?: string[] } = {}) {
  return createOutboundPolicy({
    fullAccess: { wildcard: false, explicit: new Set(opts.explicit ?? []), defaulted: false },
    csApiOverrides: new Map(),
    outboundAllow: { cidrs: (opts.cidrs ?? []).map((c) => parseCidr(c)!), hosts: new Set() },
  });
}

async function failure(p: Promise<unknown>, stage: OpenIdStage): Promise<OpenIdError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OpenIdError, `expected OpenIdError, got ${err}`);
    assert.equal(err.stage, stage, err.message);
    return err;
  }
  assert.fail(`expected OpenIdError ${stage}`);
}

/** Real outbound + discovery against a TLS fake reached through the dial seam. */
async function stack(opts: {
  hs?: Parameters<typeof startFakeHomeserver>[0];
  hosts?: Parameters<typeof scriptedResolver>[0];
  srvs?: Parameters<typeof scriptedResolver>[1];
  port?: (address: string, port: number) => number;
  policyOpts?: Parameters<typeof policy>[0];
  overrides?: Record<string, string>;
}) {
  const hs = await startFakeHomeserver({ tls: true, ...opts.hs });
  const clock = new ManualClock();
  const log = captureLogger();
  const { dial, dials } = loopbackDial(opts.port ?? (() => hs.port));
  const resolver = scriptedResolver(opts.hosts ?? { "hs.test": ["8.8.8.8"] }, opts.srvs ?? {});
  const { outbound } = testOutbound({
    resolver,
    dial,
    clock,
    log,
    caCerts: [hs.ca!.caCertPem],
    policy: policy(opts.policyOpts),
  });
  const discovery = createFederationDiscovery({ outbound, resolver, clock, log });
  const verifier = createOpenIdVerifier({
    outbound,
    discovery,
    federationOverrides: new Map(Object.entries(opts.overrides ?? {})),
    clock,
    log,
  });
  return {
    hs,
    clock,
    log,
    dials,
    resolver,
    verifier,
    async close() {
      await outbound.close();
      await hs.close();
    },
  };
}

Deno.test("subMatchesServer: server part after the first colon, byte for byte", () => {
  assert.equal(subMatchesServer("@alice:hs.test", "hs.test"), true);
  assert.equal(subMatchesServer("@alice:127.0.0.1:8448", "127.0.0.1:8448"), true);
  assert.equal(subMatchesServer("@alice:hs.test:8448", "hs.test"), false);
  assert.equal(subMatchesServer("@alice:HS.test", "hs.test"), false);
  assert.equal(subMatchesServer("alice:hs.test", "hs.test"), false);
  assert.equal(subMatchesServer("@:hs.test", "hs.test"), false);
  assert.equal(subMatchesServer("@alice", "hs.test"), false);
});

Deno.test("20 verifications → one TLS connection and one well-known fetch", async () => {
  const users: Record<string, string> = {};
  for (let i = 0; i < 20; i++) users[`tok${i}`] = `@u${i}:hs.test`;
  const s = await stack({
    hs: { users, wellKnownServer: { body: { "m.server": "hs.test:443" } } },
  });
  try {
    for (let i = 0; i < 20; i++) {
      const user = await s.verifier.verify({
        serverName: sn("hs.test"),
        accessToken: token(`tok${i}`),
      });
      assert.equal(user, `@u${i}:hs.test`);
    }
    assert.equal(s.hs.counts.connections, 1);
    assert.equal(s.hs.count("/.well-known/matrix/server"), 1);
    assert.equal(s.hs.count(USERINFO_PATH), 20);
    assert.ok(s.dials.every((d) => d === "8.8.8.8:443"));
  } finally {
    await s.close();
  }
});

Deno.test("20 concurrent verifications share the well-known fetch and a few connections", async () => {
  const users: Record<string, string> = {};
  for (let i = 0; i < 20; i++) users[`tok${i}`] = `@u${i}:hs.test`;
  const s = await stack({
    hs: { users, wellKnownServer: { body: { "m.server": "hs.test:443" } } },
  });
  try {
    const all = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => s.verifier.verify({ serverName: sn("hs.test"), accessToken: token(`tok${i}`) }),
      ),
    );
    assert.deepEqual(all, Object.values(users));
    assert.equal(s.hs.count("/.well-known/matrix/server"), 1);
    // HTTP/1.1 carries one request at a time: a burst opens a few connections (at most 4
    // connects at once), not one per request.
    assert.ok(s.hs.counts.connections <= 8, `${s.hs.counts.connections} connections`);
  } finally {
    await s.close();
  }
});

Deno.test("userinfo request: Host per resolution case, token percent-encoded, no Authorization", async () => {
  const raw = "a+b/c=d&e f%é";
  let seenToken = "";
  const s = await stack({
    hs: {
      wellKnownServer: { body: { "m.server": "delegated.test:8448" } },
      userinfo: (req) => {
        seenToken = new URL(req.url).searchParams.get("access_token") ?? "";
        return Response.json({ sub: "@alice:hs.test" });
      },
    },
    hosts: { "hs.test": ["8.8.8.8"], "delegated.test": ["8.8.4.4"] },
  });
  try {
    assert.equal(
      await s.verifier.verify({ serverName: sn("hs.test"), accessToken: token(raw) }),
      "@alice:hs.test",
    );
    assert.equal(seenToken, raw);
    const req = s.hs.requests.find((r) => r.path === USERINFO_PATH)!;
    assert.equal(req.authority, "delegated.test:8448");
    assert.equal(req.headers.get("authorization"), null);
    assert.equal(req.headers.get("accept"), "application/json");
    assert.match(req.headers.get("user-agent") ?? "", /^lk-jwt-service\//);
    assert.deepEqual(s.dials.slice(-1), ["8.8.4.4:8448"]);
  } finally {
    await s.close();
  }
});

Deno.test("HTTP errors fail without trying other destinations (exactly one userinfo request)", async () => {
  const s = await stack({
    hs: { users: {} },
    hosts: { "a.hs.test": ["8.8.8.8"], "b.hs.test": ["8.8.4.4"] },
    srvs: {
      "_matrix-fed._tcp.hs.test": [
        { priority: 1, weight: 0, port: 8448, target: "a.hs.test" },
        { priority: 2, weight: 0, port: 8448, target: "b.hs.test" },
      ],
    },
  });
  try {
    const err = await failure(
      s.verifier.verify({ serverName: sn("hs.test"), accessToken: token("bad") }),
      "status",
    );
    assert.equal(err.status, 401);
    assert.equal(err.reason, "status 401");
    assert.equal(err.destination, "8.8.8.8:8448");
    assert.equal(s.hs.count(USERINFO_PATH), 1);
  } finally {
    await s.close();
  }
});

Deno.test("transport failure moves on to the next destination", async () => {
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = dead.addr.port;
  dead.close();
  let hsPort = 0;
  const s = await stack({
    hs: { users: { t: "@bob:hs.test" } },
    hosts: { "a.hs.test": ["8.8.8.8"], "b.hs.test": ["8.8.4.4"] },
    srvs: {
      "_matrix-fed._tcp.hs.test": [
        { priority: 1, weight: 0, port: 8448, target: "a.hs.test" },
        { priority: 2, weight: 0, port: 8448, target: "b.hs.test" },
      ],
    },
    port: (address) => (address === "8.8.8.8" ? deadPort : hsPort),
  });
  hsPort = s.hs.port;
  try {
    assert.equal(
      await s.verifier.verify({ serverName: sn("hs.test"), accessToken: token("t") }),
      "@bob:hs.test",
    );
    assert.deepEqual(s.dials.filter((d) => d.endsWith(":8448")), ["8.8.8.8:8448", "8.8.4.4:8448"]);
    assert.equal(s.hs.requests.find((r) => r.path === USERINFO_PATH)?.authority, "hs.test");
  } finally {
    await s.close();
  }
});

Deno.test("bad answers: 3xx, not JSON, no string sub, too large, sub mismatch", async () => {
  const cases: [Parameters<typeof startFakeHomeserver>[0], OpenIdStage][] = [
    [{ userinfo: { status: 302, headers: { location: "https://hs.test/elsewhere" } } }, "status"],
    [{ userinfo: { status: 403, body: { errcode: "M_FORBIDDEN" } } }, "status"],
    [{ userinfo: { body: "not json" } }, "body"],
    [{ userinfo: { body: { sub: 5 } } }, "body"],
    [{ userinfo: { body: ["@a:hs.test"] } }, "body"],
    [{ userinfo: { body: { sub: "@a:hs.test", pad: "x".repeat(70_000) } } }, "body"],
    [{ userinfo: { body: { sub: "@a:evil.test" } } }, "sub mismatch"],
    [{ userinfo: { body: { sub: "@a:hs.test:8448" } } }, "sub mismatch"],
  ];
  for (const [hs, stage] of cases) {
    const s = await stack({ hs });
    try {
      const err = await failure(
        s.verifier.verify({ serverName: sn("hs.test"), accessToken: token("SECRET-TOKEN") }),
        stage,
      );
      assert.ok(!err.message.includes("SECRET-TOKEN"));
      assert.ok(!JSON.stringify(s.log.lines).includes("SECRET-TOKEN"));
      assert.equal(s.hs.count(USERINFO_PATH), 1, `exactly one request for ${stage}`);
    } finally {
      await s.close();
    }
  }
});

Deno.test("TLS failure: no userinfo request reaches the homeserver; stage tls", async () => {
  const other = await createTestCa(await Deno.makeTempDir({ prefix: "lkjwt-other-ca-" }));
  const s = await stack({
    hs: { tls: { cert: other.leaf.certPem, key: other.leaf.keyPem }, users: { t: "@a:hs.test" } },
  });
  try {
    const err = await failure(
      s.verifier.verify({ serverName: sn("hs.test"), accessToken: token("t") }),
      "tls",
    );
    assert.equal(err.serverName, "hs.test");
    assert.equal(err.destination, "8.8.8.8:8448");
    assert.equal(s.hs.counts.requests, 0);
  } finally {
    await s.close();
  }
});

Deno.test("SSRF: private destinations are refused unless the server name is listed explicitly", async () => {
  const s = await stack({ hs: { users: { t: "@a:hs.test" } }, hosts: { "hs.test": ["10.0.0.8"] } });
  try {
    const err = await failure(
      s.verifier.verify({ serverName: sn("hs.test"), accessToken: token("t") }),
      "destination not allowed",
    );
    assert.equal(err.destination, "10.0.0.8:8448");
    assert.equal(s.hs.counts.connections, 0);
  } finally {
    await s.close();
  }
  const ok = await stack({
    hs: { users: { t: "@a:hs.test" } },
    hosts: { "hs.test": ["10.0.0.8"] },
    policyOpts: { explicit: ["hs.test"] },
  });
  try {
    assert.equal(
      await ok.verifier.verify({ serverName: sn("hs.test"), accessToken: token("t") }),
      "@a:hs.test",
    );
  } finally {
    await ok.close();
  }
});

Deno.test("LIVEKIT_FEDERATION_URL_OVERRIDES: direct, unguarded, no discovery", async () => {
  const hs = await startFakeHomeserver({ users: { t: "@a:hs.test:8448" } });
  const { outbound } = testOutbound({ resolver: scriptedResolver(), policy: policy() });
  let resolves = 0;
  const v = createOpenIdVerifier({
    outbound,
    discovery: {
      resolve: () => {
        resolves++;
        return Promise.resolve([]);
      },
    },
    federationOverrides: new Map([["hs.test:8448", `${hs.url}/`]]),
    clock: new ManualClock(),
    log: captureLogger(),
  });
  try {
    assert.equal(
      await v.verify({ serverName: sn("hs.test:8448"), accessToken: token("t") }),
      "@a:hs.test:8448",
    );
    assert.equal(resolves, 0);
    assert.equal(hs.requests[0]?.authority, `127.0.0.1:${hs.port}`);
    assert.equal(hs.requests[0]?.path, USERINFO_PATH);
  } finally {
    await outbound.close();
    await hs.close();
  }
});
