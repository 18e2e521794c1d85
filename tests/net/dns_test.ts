import assert from "node:assert/strict";
import dgram from "node:dgram";
import { silentLogger } from "../../lib/log.ts";
import { createSystemResolver, DnsError, type LookupFn, type SrvFn } from "../../lib/net/dns.ts";
import { ManualClock } from "../support/manual_clock.ts";

function counting(answers: Record<string, string[] | Error>): LookupFn & { calls: string[] } {
  const calls: string[] = [];
  const fn = (host: string) => {
    calls.push(host);
    const a = answers[host];
    if (a === undefined) {
      return Promise.reject(
        Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" }),
      );
    }
    return a instanceof Error ? Promise.reject(a) : Promise.resolve([...a]);
  };
  return Object.assign(fn, { calls });
}

async function dnsCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DnsError, String(err));
    return err.code;
  }
  return "resolved";
}

Deno.test("lookup: IP literals need no query; answers are deduplicated and cached for 60 s", async () => {
  const clock = new ManualClock();
  const lookup = counting({ "hs.test": ["1.2.3.4", "1.2.3.4", "2001:db8::1"] });
  const r = createSystemResolver({ clock, log: silentLogger, lookup });
  assert.deepEqual(await r.lookup("10.0.0.1"), ["10.0.0.1"]);
  assert.deepEqual(await r.lookup("[::1]"), ["::1"]);
  assert.deepEqual(lookup.calls, []);
  assert.deepEqual(await r.lookup("hs.test"), ["1.2.3.4", "2001:db8::1"]);
  assert.deepEqual(await r.lookup("HS.test."), ["1.2.3.4", "2001:db8::1"]);
  assert.equal(lookup.calls.length, 1);
  await clock.advance(59_999);
  await r.lookup("hs.test");
  assert.equal(lookup.calls.length, 1);
  await clock.advance(1);
  await r.lookup("hs.test");
  assert.equal(lookup.calls.length, 2);
});

Deno.test("lookup: not-found is cached for 60 s, other failures are not cached", async () => {
  const clock = new ManualClock();
  const lookup = counting({ "flaky.test": new Error("EAI_AGAIN") });
  const r = createSystemResolver({ clock, log: silentLogger, lookup });
  assert.equal(await dnsCode(r.lookup("missing.test")), "not_found");
  assert.equal(await dnsCode(r.lookup("missing.test")), "not_found");
  assert.deepEqual(lookup.calls, ["missing.test"]);
  await clock.advance(60_000);
  assert.equal(await dnsCode(r.lookup("missing.test")), "not_found");
  assert.equal(lookup.calls.length, 2);
  assert.equal(await dnsCode(r.lookup("flaky.test")), "failure");
  assert.equal(await dnsCode(r.lookup("flaky.test")), "failure");
  assert.equal(lookup.calls.filter((h) => h === "flaky.test").length, 2);
});

Deno.test("lookup: 5 s timeout from the injected clock; concurrent queries share one lookup", async () => {
  const clock = new ManualClock();
  const calls: string[] = [];
  const r = createSystemResolver({
    clock,
    log: silentLogger,
    lookup: (h) => {
      calls.push(h);
      return new Promise(() => {});
    },
  });
  const a = dnsCode(r.lookup("slow.test"));
  const b = dnsCode(r.lookup("slow.test"));
  await clock.advance(4_999);
  assert.equal(calls.length, 1);
  await clock.advance(1);
  assert.equal(await a, "timeout");
  assert.equal(await b, "timeout");
});

Deno.test("srv: trailing dots stripped, NotFound = [], cached; other errors rejected", async () => {
  const clock = new ManualClock();
  const calls: string[] = [];
  const resolveSrv: SrvFn = (name) => {
    calls.push(name);
    if (name === "_matrix-fed._tcp.hs.test") {
      return Promise.resolve([{ priority: 10, weight: 5, port: 8448, target: "fed.hs.test." }]);
    }
    if (name === "_matrix-fed._tcp.broken.test") return Promise.reject(new Error("SERVFAIL"));
    return Promise.reject(new Deno.errors.NotFound("no records found"));
  };
  const r = createSystemResolver({ clock, log: silentLogger, resolveSrv });
  assert.deepEqual(await r.srv("_matrix-fed._tcp.hs.test"), [
    { priority: 10, weight: 5, port: 8448, target: "fed.hs.test" },
  ]);
  await r.srv("_matrix-fed._tcp.hs.test");
  assert.deepEqual(await r.srv("_matrix._tcp.none.test"), []);
  await r.srv("_matrix._tcp.none.test");
  assert.deepEqual(calls, ["_matrix-fed._tcp.hs.test", "_matrix._tcp.none.test"]);
  assert.equal(await dnsCode(r.srv("_matrix-fed._tcp.broken.test")), "failure");
});

Deno.test("system lookup honours /etc/hosts (localhost, no network)", async () => {
  const r = createSystemResolver({ clock: new ManualClock(), log: silentLogger });
  const addrs = await r.lookup("localhost");
  assert.ok(addrs.includes("127.0.0.1") || addrs.includes("::1"), addrs.join(","));
});

/** A tiny DNS server answering SRV queries from a map (NXDOMAIN otherwise). */
function startDnsFake(records: Record<string, [number, number, number, string][]>) {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
    const labels: string[] = [];
    let i = 12;
    while (msg[i]) {
      const len = msg[i]!;
      labels.push(new TextDecoder().decode(msg.subarray(i + 1, i + 1 + len)));
      i += len + 1;
    }
    const questionEnd = i + 5;
    const name = labels.join(".").toLowerCase();
    const answers = records[name];
    const out: number[] = [
      msg[0]!,
      msg[1]!,
      0x81,
      answers ? 0x80 : 0x83,
      0,
      1,
      0,
      answers?.length ?? 0,
      0,
      0,
      0,
      0,
    ];
    out.push(...msg.subarray(12, questionEnd));
    for (const [priority, weight, port, target] of answers ?? []) {
      const rdata: number[] = [
        priority >> 8,
        priority & 255,
        weight >> 8,
        weight & 255,
        port >> 8,
        port & 255,
      ];
      for (const label of target.split(".").filter((l) => l !== "")) {
        rdata.push(label.length, ...new TextEncoder().encode(label));
      }
      rdata.push(0);
      out.push(0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, rdata.length >> 8, rdata.length & 255, ...rdata);
    }
    socket.send(new Uint8Array(out), rinfo.port, rinfo.address);
  });
  return new Promise<{ port: number; close: () => Promise<void> }>((resolve) => {
    socket.bind(0, "127.0.0.1", () => {
      resolve({
        port: socket.address().port,
        close: () => new Promise<void>((r) => socket.close(() => r())),
      });
    });
  });
}

Deno.test("srv through Deno.resolveDns against a local name server", async () => {
  const dns = await startDnsFake({
    "_matrix-fed._tcp.hs.test": [[10, 0, 8448, "fed.hs.test."], [20, 5, 443, "b.hs.test."]],
  });
  try {
    const r = createSystemResolver({
      clock: new ManualClock(),
      log: silentLogger,
      nameServer: { ipAddr: "127.0.0.1", port: dns.port },
    });
    const found = await r.srv("_matrix-fed._tcp.hs.test");
    assert.deepEqual(
      found.sort((a, b) => a.priority - b.priority),
      [
        { priority: 10, weight: 0, port: 8448, target: "fed.hs.test" },
        { priority: 20, weight: 5, port: 443, target: "b.hs.test" },
      ],
    );
    assert.deepEqual(await r.srv("_matrix._tcp.hs.test"), []);
  } finally {
    await dns.close();
  }
});
