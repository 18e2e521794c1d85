import assert from "node:assert/strict";
import { silentLogger } from "../../lib/log.ts";
import { PIN_PROXY_HOSTNAME, startPinProxy } from "../../lib/net/pin_proxy.ts";
import { writeAll } from "../../lib/net/pipe.ts";
import { ManualClock } from "../support/manual_clock.ts";

async function rawExchange(proxyUrl: string, head: string): Promise<string> {
  const u = new URL(proxyUrl);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    await writeAll(conn, new TextEncoder().encode(head));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

const basic = (user: string, pass: string) =>
  `Proxy-Authorization: Basic ${btoa(`${user}:${pass}`)}\r\n`;

Deno.test("pinning proxy listens on its dedicated loopback address (or 127.0.0.1)", async () => {
  const proxy = startPinProxy({ clock: new ManualClock(), log: silentLogger });
  try {
    const host = new URL(proxy.url).hostname;
    assert.ok(host === PIN_PROXY_HOSTNAME || host === "127.0.0.1", host);
  } finally {
    await proxy.close();
  }
});

Deno.test("pinning proxy refuses missing, unknown, wrong-nonce and released pins, and other hosts", async () => {
  const dials: string[] = [];
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const proxy = startPinProxy({
    clock: new ManualClock(),
    log: silentLogger,
    dial: (h, p) => {
      dials.push(`${h}:${p}`);
      return { hostname: "127.0.0.1", port: target.addr.port };
    },
  });
  try {
    const pin = proxy.register({ address: "8.8.8.8", port: 8448, host: "hs.test" });
    const { username, password } = pin.basicAuth;
    const connect = (auth: string, host = "hs.test:443") =>
      rawExchange(proxy.url, `CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\n`);
    assert.match(await connect(""), /^HTTP\/1\.1 407/);
    assert.match(await connect(basic("nope", password)), /^HTTP\/1\.1 407/);
    assert.match(await connect(basic(username, "wrong")), /^HTTP\/1\.1 407/);
    assert.match(await connect(basic(username, password), "other.test:443"), /^HTTP\/1\.1 403/);
    assert.deepEqual(dials, []);
    // The pinned port wins over the CONNECT port.
    assert.match(await connect(basic(username, password)), /^HTTP\/1\.1 200/);
    assert.deepEqual(dials, ["8.8.8.8:8448"]);
    proxy.release(pin);
    assert.match(await connect(basic(username, password)), /^HTTP\/1\.1 407/);
  } finally {
    await proxy.close();
    target.close();
  }
});

Deno.test("pinning proxy reports a refused connect on the pin", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  const proxy = startPinProxy({
    clock: new ManualClock(),
    log: silentLogger,
    dial: () => ({ hostname: "127.0.0.1", port }),
  });
  try {
    const pin = proxy.register({ address: "8.8.8.8", port: 443, host: "hs.test" });
    const reply = await rawExchange(
      proxy.url,
      `CONNECT hs.test:443 HTTP/1.1\r\n${
        basic(pin.basicAuth.username, pin.basicAuth.password)
      }\r\n`,
    );
    assert.match(reply, /^HTTP\/1\.1 502/);
    assert.equal(pin.lastFailure?.kind, "connect");
    assert.match(pin.lastFailure?.message ?? "", /8\.8\.8\.8:443/);
  } finally {
    await proxy.close();
  }
});
