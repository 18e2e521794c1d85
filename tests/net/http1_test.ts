import assert from "node:assert/strict";
import { Http1Connection, MAX_HEAD_BYTES, requestText } from "../../lib/net/http1.ts";
import { createOutbound } from "../../lib/net/outbound.ts";
import { OutboundError } from "../../lib/net/outbound_error.ts";
import { NO_PROXIES } from "../../lib/net/proxy_env.ts";
import { allowAllPolicy } from "../../lib/net/ssrf.ts";
import { ManualClock } from "../support/manual_clock.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const URL_ = new URL("https://hs.test/x?secret=1");

/**
 * A connection whose reads return the scripted bytes, at most `step` bytes per read (1 = one
 * byte at a time: every parser boundary falls inside a read), then end of stream.
 */
function scriptedConn(response: string | Uint8Array, step = 1 << 20) {
  let data = typeof response === "string" ? encoder.encode(response) : response;
  const written: Uint8Array[] = [];
  let closed = false;
  const conn = {
    read(p: Uint8Array): Promise<number | null> {
      if (closed) return Promise.reject(new Deno.errors.BadResource("closed"));
      if (data.byteLength === 0) return Promise.resolve(null);
      const n = Math.min(p.byteLength, step, data.byteLength);
      p.set(data.subarray(0, n));
      data = data.subarray(n);
      return Promise.resolve(n);
    },
    write(p: Uint8Array): Promise<number> {
      written.push(p.slice());
      return Promise.resolve(p.byteLength);
    },
    close() {
      closed = true;
    },
  };
  return {
    conn: conn as unknown as Deno.Conn,
    sent: () => written.map((w) => decoder.decode(w)).join(""),
  };
}

function exchange(response: string | Uint8Array, opts: { step?: number; max?: number } = {}) {
  const { conn, sent } = scriptedConn(response, opts.step);
  const c = new Http1Connection(conn);
  const request = requestText({ method: "POST", url: URL_, headers: [], body: "{}" });
  const p = c.exchange(request, { method: "POST", url: URL_, maxBodyBytes: opts.max ?? 1024 });
  return { p, sent, c };
}

async function failsWith(p: Promise<unknown>, kind: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof OutboundError, String(err));
    assert.equal(err.kind, kind, err.message);
    if (pattern) assert.match(err.message, pattern);
    assert.ok(!err.message.includes("secret"), "no query string in messages");
    return true;
  });
}

Deno.test("http1 request: origin-form target, Host with port, framing headers owned", () => {
  const headers: [string, string][] = [
    ["content-type", "application/json"],
    ["host", "evil.test"],
    ["connection", "close"],
    ["content-length", "99"],
    ["transfer-encoding", "chunked"],
  ];
  const url = new URL("http://hs.test:8008/p/a%2Fb?q=1#frag");
  assert.equal(
    requestText({ method: "POST", url, headers, body: "{}" }),
    "POST /p/a%2Fb?q=1 HTTP/1.1\r\nHost: hs.test:8008\r\ncontent-type: application/json\r\n" +
      "Content-Length: 2\r\n\r\n{}",
  );
  const get = requestText({
    method: "GET",
    url: new URL("https://[::1]/"),
    headers: [],
    body: undefined,
  });
  assert.equal(get, "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "no body, no Content-Length");
  const empty = requestText({ method: "POST", url, headers: [], body: undefined });
  assert.match(empty, /Content-Length: 0\r\n\r\n$/, "a POST always declares its length");
  const utf8 = requestText({ method: "POST", url, headers: [], body: '{"é":"€"}' });
  assert.match(utf8, /Content-Length: 12\r\n/, "Content-Length counts UTF-8 bytes");
});

Deno.test("http1 request: one write of the UTF-8 bytes, also when larger than the buffer", async () => {
  for (const body of ['{"é":"€"}', "x".repeat(10_000)]) {
    const { conn, sent } = scriptedConn("HTTP/1.1 204 No Content\r\n\r\n");
    const text = requestText({ method: "POST", url: URL_, headers: [], body });
    await new Http1Connection(conn).exchange(text, { method: "POST", url: URL_, maxBodyBytes: 1 });
    assert.equal(sent(), text);
  }
});

Deno.test("http1 response: Content-Length body, parsed byte by byte; connection stays reusable", async () => {
  const { p, sent } = exchange(
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    {
      step: 1,
    },
  );
  const res = await p;
  assert.equal(res.status, 200);
  assert.equal(decoder.decode(res.body), "{}");
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.reusable, true);
  assert.match(sent(), /^POST \/x\?secret=1 HTTP\/1\.1\r\nHost: hs\.test\r\n/);
});

Deno.test("http1 response: interim 1xx skipped, chunked body with extensions and trailers", async () => {
  const wire = "HTTP/1.1 100 Continue\r\n\r\n" +
    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
  for (const step of [1, 7, 1 << 20]) {
    const res = await exchange(wire, { step }).p;
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "3");
    assert.equal(decoder.decode(res.body), "hello world");
    assert.equal(res.reusable, true);
  }
});

Deno.test("http1 response: no length = read to the end, connection not reusable", async () => {
  const res = await exchange("HTTP/1.0 200 OK\r\n\r\nall of it", { step: 3 }).p;
  assert.equal(decoder.decode(res.body), "all of it");
  assert.equal(res.reusable, false);
  const closeRes = await exchange(
    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
  ).p;
  assert.equal(closeRes.reusable, false, "Connection: close");
  const noBody = await exchange("HTTP/1.1 204 No Content\r\n\r\n").p;
  assert.equal(noBody.body.byteLength, 0);
  assert.equal(noBody.reusable, true);
  const extra = await exchange("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy").p;
  assert.equal(extra.reusable, false, "bytes beyond the response: never reused");
});

Deno.test("http1 response: size cap is exact for every framing", async () => {
  const max = 10;
  const ten = "0123456789";
  assert.equal(
    (await exchange(`HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n${ten}`, { max }).p).body
      .byteLength,
    10,
  );
  await failsWith(
    exchange("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", { max }).p,
    "too_large",
    /exceeds 10 bytes/,
  );
  const chunked = (n: number) =>
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${n.toString(16)}\r\n${
      "a".repeat(n)
    }\r\n0\r\n\r\n`;
  assert.equal((await exchange(chunked(10), { max }).p).body.byteLength, 10);
  await failsWith(exchange(chunked(11), { max }).p, "too_large");
  await failsWith(
    exchange("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n", { max }).p,
    "too_large",
    undefined,
  );
  assert.equal(
    (await exchange(`HTTP/1.1 200 OK\r\n\r\n${ten}`, { max, step: 3 }).p).body.byteLength,
    10,
  );
  await failsWith(exchange(`HTTP/1.1 200 OK\r\n\r\n${ten}x`, { max, step: 3 }).p, "too_large");
});

Deno.test("http1 response: malformed or cut-off responses fail with kind other", async () => {
  const cases: [string, RegExp][] = [
    ["", /connection closed/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", /closed in the body/],
    ["HTTP/1.1 200 OK\r\nContent-Le", /closed inside the response head/],
    ["HTTP/2 200\r\n\r\n", /bad status line/],
    ["SSH-2.0-OpenSSH\r\n\r\n", /bad status line/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", /bad Content-Length/],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /bad Content-Length/],
    ["HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", /bad header line/],
    ["HTTP/1.1 200 OK\r\nbad header\r\n\r\n", /bad header line/],
    ["HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", /bad header line/],
    ["HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n", /bad header field/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /bad chunk size/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", /bad chunk end/],
    ["HTTP/1.1 101 Switching Protocols\r\n\r\n", /protocol switch/],
  ];
  for (const [wire, pattern] of cases) {
    await failsWith(exchange(wire).p, "other", pattern);
  }
  const hugeHead = `HTTP/1.1 200 OK\r\nX: ${"a".repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
  await failsWith(exchange(hugeHead).p, "other", /head too large/);
});

Deno.test("http1 connection: responseStarted tells a dropped idle connection from a cut-off answer", async () => {
  const silent = exchange("");
  await assert.rejects(silent.p);
  assert.equal(silent.c.responseStarted, false);
  const cut = exchange("HTTP/1.1 2");
  await assert.rejects(cut.p);
  assert.equal(cut.c.responseStarted, true);
});

Deno.test("http1 request: a GET has no body framing; the outbound client asks for identity coding", async () => {
  assert.equal(
    requestText({
      method: "GET",
      url: URL_,
      headers: [["accept", "application/json"]],
      body: undefined,
    }),
    "GET /x?secret=1 HTTP/1.1\r\nHost: hs.test\r\naccept: application/json\r\n\r\n",
  );
  const { conn, sent } = scriptedConn("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
  const outbound = createOutbound({
    policy: allowAllPolicy,
    resolver: { lookup: () => Promise.resolve(["8.8.8.8"]), srv: () => Promise.resolve([]) },
    caCerts: [],
    log: outboundLog,
    clock: new ManualClock(),
    proxies: NO_PROXIES,
    connect: () => Promise.resolve(conn),
  });
  try {
    const res = await outbound.request({
      url: "http://hs.test/x",
      timeoutMs: 1000,
      maxBodyBytes: 10,
    });
    assert.equal(decoder.decode(res.body), "{}");
    assert.match(sent(), /^GET \/x HTTP\/1\.1\r\nHost: hs\.test\r\n/);
    assert.match(sent(), /\r\naccept-encoding: identity\r\n/);
    assert.doesNotMatch(sent(), /content-length/i);
  } finally {
    await outbound.close();
  }
});

const outboundLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => outboundLog,
  enabled: () => false,
};

Deno.test("http1 response: a coded body is refused; identity and empty coded bodies are fine", async () => {
  await failsWith(
    exchange("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n\x1f\x8b").p,
    "other",
    /unsupported Content-Encoding gzip/,
  );
  await failsWith(
    exchange("HTTP/1.1 200 OK\r\nContent-Encoding: identity, br\r\n\r\nxyz").p,
    "other",
    /Content-Encoding/,
  );
  const identity = await exchange(
    "HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}",
  ).p;
  assert.equal(decoder.decode(identity.body), "{}");
  const empty = await exchange("HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\n\r\n").p;
  assert.equal(empty.body.byteLength, 0);
});

Deno.test("http1 response: HTTP/1.0 with a length is read exactly but never reused; early close fails", async () => {
  const res = await exchange(
    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
    { step: 1 },
  ).p;
  assert.equal(decoder.decode(res.body), "abc");
  assert.equal(res.reusable, false);
  await failsWith(
    exchange("HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nabc").p,
    "other",
    /closed in the body/,
  );
  await failsWith(
    exchange("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab").p,
    "other",
    /closed in the body/,
  );
});
