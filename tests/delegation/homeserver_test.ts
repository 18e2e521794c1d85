import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  DelayedEventClient,
  delayedEventUrl,
  delayHash,
  encodeDelayIdSegment,
} from "../../lib/delegation/homeserver.ts";
import type { Outbound, OutboundRequest } from "../../lib/delegation/ports.ts";
import { Secret, serverName } from "../../lib/ids.ts";
import { USER_AGENT } from "../../lib/version.ts";
import { serveDelayedEvents } from "../fakes/delayed_events.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { fetchOutbound, StubOutboundError } from "./support.ts";

Deno.test("homeserver encodeDelayIdSegment: one segment, unreserved kept, uppercase hex", () => {
  strictEqual(encodeDelayIdSegment("syd_a/../b?c"), "syd_a%2F..%2Fb%3Fc");
  strictEqual(encodeDelayIdSegment("AZaz09-._~"), "AZaz09-._~");
  strictEqual(
    encodeDelayIdSegment("!*'() #%+&=;:@,$"),
    "%21%2A%27%28%29%20%23%25%2B%26%3D%3B%3A%40%2C%24",
  );
  strictEqual(encodeDelayIdSegment("é€😀"), "%C3%A9%E2%82%AC%F0%9F%98%80");
  strictEqual(encodeDelayIdSegment("a\\b\nc"), "a%5Cb%0Ac");
});

Deno.test("homeserver delayHash: first 12 hex digits of SHA-256 (delegation.md §11 vector)", () => {
  strictEqual(delayHash("syd_abcdefghij"), "47ccfd8a8697");
});

Deno.test("homeserver delayedEventUrl: base path prefix kept, trailing slash removed", () => {
  strictEqual(
    delayedEventUrl("https://hs.example.com", { delayId: "syd_x", action: "restart" }),
    "https://hs.example.com/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_x/restart",
  );
  strictEqual(
    delayedEventUrl("https://hs.example.com/prefix/", { delayId: "a/b", action: "send" }),
    "https://hs.example.com/prefix/_matrix/client/unstable/org.matrix.msc4140/delayed_events/a%2Fb/send",
  );
});

Deno.test("homeserver call: unauthenticated POST {} with the headers of §4", async () => {
  const server = serveDelayedEvents();
  const outbound = fetchOutbound();
  try {
    const client = new DelayedEventClient({ outbound, clock: new ManualClock() });
    const outcome = await client.call({
      base: { baseUrl: server.url + "/p", guarded: true },
      serverName: serverName("example.com"),
      delayId: new Secret("delay_id", "syd_a/../b?c"),
      action: "restart",
    });
    strictEqual(outcome.kind, "success");
    const call = server.fake.calls[0]!;
    strictEqual(call.method, "POST");
    strictEqual(call.rawSegment, "syd_a%2F..%2Fb%3Fc");
    strictEqual(call.delayId, "syd_a/../b?c");
    strictEqual(call.prefix, "/p");
    strictEqual(call.action, "restart");
    strictEqual(call.body, "{}");
    strictEqual(call.headers.get("content-type"), "application/json");
    strictEqual(call.headers.get("accept"), "application/json");
    strictEqual(call.headers.get("user-agent"), USER_AGENT);
    strictEqual(call.headers.get("authorization"), null);
    const req = outbound.requests[0]!;
    strictEqual(req.timeoutMs, 5000);
    strictEqual(req.maxBodyBytes, 65536);
    deepStrictEqual(req.redirect, {
      maxHops: 3,
      httpsOnly: false,
      sameHostOnly: true,
      statuses: [307, 308],
    });
    deepStrictEqual(req.guard, { serverName: "example.com" });
  } finally {
    await outbound.close();
    await server.close();
  }
});

Deno.test("homeserver call: override bases (guarded=false) are not guarded", async () => {
  const seen: OutboundRequest[] = [];
  const outbound: Outbound = {
    request(req) {
      seen.push(req);
      return Promise.resolve({
        status: 200,
        headers: new Headers(),
        body: new Uint8Array(),
        url: req.url,
      });
    },
    close: () => Promise.resolve(),
  };
  const client = new DelayedEventClient({ outbound, clock: new ManualClock() });
  await client.call({
    base: { baseUrl: "http://127.0.0.1:8008", guarded: false },
    serverName: serverName("example.com"),
    delayId: new Secret("delay_id", "x"),
    action: "send",
  });
  strictEqual(seen[0]!.guard, undefined);
});

Deno.test("homeserver call: transport failures, too-large bodies and guard denials are transient", async () => {
  for (const kind of ["connect", "too_large", "blocked", "timeout", "redirect"]) {
    const outbound: Outbound = {
      request: () => Promise.reject(new StubOutboundError(kind, "boom https://secret/url")),
      close: () => Promise.resolve(),
    };
    const client = new DelayedEventClient({ outbound, clock: new ManualClock() });
    const outcome = await client.call({
      base: { baseUrl: "https://hs", guarded: true },
      serverName: serverName("example.com"),
      delayId: new Secret("delay_id", "x"),
      action: "restart",
    });
    deepStrictEqual(outcome, { kind: "transient", detail: `transport error (${kind})` });
  }
});

Deno.test("homeserver call: a 64 KiB+ error body is transient, a same-host 307 is followed", async () => {
  const server = serveDelayedEvents();
  const outbound = fetchOutbound();
  try {
    const client = new DelayedEventClient({ outbound, clock: new ManualClock() });
    const base = { baseUrl: server.url, guarded: true };
    const common = { base, serverName: serverName("example.com") };
    server.fake.script("big", "restart", { status: 500, body: "x".repeat(70_000) });
    const big = await client.call({
      ...common,
      delayId: new Secret("delay_id", "big"),
      action: "restart",
    });
    strictEqual(big.kind, "transient");
    server.fake.script("moved", "send", {
      status: 307,
      headers: {
        Location:
          `${server.url}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/moved2/send`,
      },
    });
    const moved = await client.call({
      ...common,
      delayId: new Secret("delay_id", "moved"),
      action: "send",
    });
    strictEqual(moved.kind, "success");
    strictEqual(server.fake.count("moved2", "send"), 1);
    strictEqual(server.fake.callsFor("moved2")[0]!.method, "POST");
  } finally {
    await outbound.close();
    await server.close();
  }
});
