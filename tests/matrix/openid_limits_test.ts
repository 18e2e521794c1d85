import assert from "node:assert/strict";
import { Secret, type ServerName, serverName } from "../../lib/ids.ts";
import type { Destination, FederationDiscovery } from "../../lib/matrix/federation.ts";
import { createOpenIdVerifier, OpenIdError, type OpenIdStage } from "../../lib/matrix/openid.ts";
import { USERINFO_PATH } from "../fakes/homeserver.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { captureLogger } from "../net/_helpers.ts";
import { fakeOutbound, type Scripted } from "./_helpers.ts";

const token = (t: string) => new Secret("openid_token", t);
const sn = (s: string): ServerName => serverName(s);

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

/** Verifier over a scripted outbound and a fixed destination list. */
function scripted(
  answer: (req: { url: string }) => Scripted | Promise<Scripted>,
  discovery?: FederationDiscovery,
) {
  const clock = new ManualClock();
  const outbound = fakeOutbound(answer);
  const destinations: Destination[] = [{
    address: "8.8.8.8",
    port: 8448,
    hostHeader: "hs.test",
    tlsName: "hs.test",
  }];
  const v = createOpenIdVerifier({
    outbound,
    discovery: discovery ?? { resolve: () => Promise.resolve(destinations) },
    federationOverrides: new Map(),
    clock,
    log: captureLogger(),
    maxConcurrent: 2,
  });
  return { v, clock, outbound };
}

Deno.test("invalid server name: stage parse, no network at all", async () => {
  const outbound = fakeOutbound(() => ({ status: 500 }));
  let resolves = 0;
  const discovery: FederationDiscovery = {
    resolve: () => {
      resolves++;
      return Promise.resolve([]);
    },
  };
  const v = createOpenIdVerifier({
    outbound,
    discovery,
    federationOverrides: new Map(),
    clock: new ManualClock(),
    log: captureLogger(),
  });
  await failure(v.verify({ serverName: sn("bad name"), accessToken: token("t") }), "parse");
  assert.equal(outbound.requests.length + resolves, 0);
});

Deno.test("request parameters: 10 s, 64 KiB, no redirects, guarded, pinned to the destination", async () => {
  const { v, outbound } = scripted(() => ({ status: 200, body: { sub: "@a:hs.test" } }));
  await v.verify({ serverName: sn("hs.test"), accessToken: token("t") });
  const req = outbound.requests[0]!;
  assert.equal(req.timeoutMs, 10_000);
  assert.equal(req.maxBodyBytes, 65_536);
  assert.equal(req.redirect, undefined);
  assert.deepEqual(req.guard, { serverName: "hs.test" });
  assert.deepEqual(req.connectTo, { address: "8.8.8.8", port: 8448, host: "hs.test" });
  assert.equal(req.url, "https://hs.test/_matrix/federation/v1/openid/userinfo?access_token=t");
});

Deno.test("cache: success for min(10 min, expires_in), failure for 10 s", async () => {
  let sub = "@a:hs.test";
  const { v, clock, outbound } = scripted(() => ({ status: 200, body: { sub } }));
  const verify = (t: string, expiresInSeconds?: number) =>
    v.verify({ serverName: sn("hs.test"), accessToken: token(t), expiresInSeconds });
  await verify("long");
  await clock.advance(10 * 60_000 - 1);
  await verify("long");
  assert.equal(outbound.count(USERINFO_PATH), 1);
  await clock.advance(1);
  await verify("long");
  assert.equal(outbound.count(USERINFO_PATH), 2);
  await verify("short", 30);
  await clock.advance(30_000);
  await verify("short", 30);
  assert.equal(outbound.count(USERINFO_PATH), 4);
  // Failures: cached 10 s, then retried.
  sub = "@a:other.test";
  await failure(verify("bad"), "sub mismatch");
  await failure(verify("bad"), "sub mismatch");
  assert.equal(outbound.count(USERINFO_PATH), 5);
  await clock.advance(10_000);
  sub = "@a:hs.test";
  assert.equal(await verify("bad"), "@a:hs.test");
  assert.equal(outbound.count(USERINFO_PATH), 6);
  // The cache is keyed by server name too.
  await failure(
    v.verify({ serverName: sn("other.test"), accessToken: token("long") }),
    "sub mismatch",
  );
});

Deno.test("concurrent identical verifications share one request; a caller abort does not cancel it", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { v, clock, outbound } = scripted(async () => {
    await gate;
    return { status: 200, body: { sub: "@a:hs.test" } };
  });
  const ac = new AbortController();
  const aborted = v.verify({
    serverName: sn("hs.test"),
    accessToken: token("t"),
    signal: ac.signal,
  });
  const others = Array.from(
    { length: 9 },
    () => v.verify({ serverName: sn("hs.test"), accessToken: token("t") }),
  );
  await clock.flush();
  ac.abort();
  await failure(aborted, "timeout");
  release();
  assert.deepEqual(await Promise.all(others), Array(9).fill("@a:hs.test"));
  assert.equal(outbound.count(USERINFO_PATH), 1);
});

Deno.test("whole verification budget is 30 s (discovery included)", async () => {
  const discovery: FederationDiscovery = {
    resolve: (_name, signal) =>
      new Promise((_, reject) =>
        signal?.addEventListener("abort", () => reject(new Error("aborted")))
      ),
  };
  const { v, clock } = scripted(() => ({ status: 500 }), discovery);
  const pending = v.verify({ serverName: sn("hs.test"), accessToken: token("t") });
  let settled = false;
  pending.catch(() => (settled = true));
  await clock.advance(29_999);
  assert.equal(settled, false);
  await clock.advance(1);
  await failure(pending, "timeout");
});

Deno.test("at most N verifications in flight; the rest wait", async () => {
  const started: string[] = [];
  const releases: (() => void)[] = [];
  const discovery: FederationDiscovery = {
    resolve: (name) => {
      started.push(name);
      return new Promise((resolve) =>
        releases.push(() =>
          resolve([{ address: "8.8.8.8", port: 8448, hostHeader: name, tlsName: name }])
        )
      );
    },
  };
  const { v, clock } = scripted((req) => ({
    status: 200,
    body: { sub: `@a:${new URL(req.url).hostname}` },
  }), discovery);
  const all = ["a.test", "b.test", "c.test"].map((n) =>
    v.verify({ serverName: sn(n), accessToken: token("t") })
  );
  await clock.flush();
  assert.deepEqual(started, ["a.test", "b.test"]);
  releases[0]!();
  await clock.flush();
  assert.deepEqual(started, ["a.test", "b.test", "c.test"]);
  releases[1]!();
  releases[2]!();
  assert.deepEqual(await Promise.all(all), ["@a:a.test", "@a:b.test", "@a:c.test"]);
});
