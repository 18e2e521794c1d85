/**
 * Upstream proxies on the built-in client (openid-and-discovery.md §8.6): `http://` proxies
 * carry a `CONNECT` tunnel (credentials as `Proxy-Authorization`), a refused tunnel is a
 * `connect` failure naming the proxy, other proxy schemes are refused with a logged reason.
 */
import assert from "node:assert/strict";
import { startFakeHomeserver } from "../fakes/homeserver.ts";
import { splice, writeAll } from "../support/pipe.ts";
import {
  captureLogger,
  rejectsKind as rejects,
  scriptedResolver,
  testOutbound,
} from "./_helpers.ts";

const GUARD = { serverName: "hs.test" };
const KIB = 1024;

/** A CONNECT proxy that records request heads and answers `status` (200 = tunnel to `port`). */
function startConnectProxy(port: number, status = 200) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const heads: string[] = [];
  const tasks: Promise<void>[] = [];
  const serve = async (conn: Deno.Conn) => {
    let head = "";
    const buf = new Uint8Array(1);
    while (!head.endsWith("\r\n\r\n")) {
      if (await conn.read(buf) === null) return conn.close();
      head += String.fromCharCode(buf[0]!);
    }
    heads.push(head);
    if (status !== 200) {
      await writeAll(conn, new TextEncoder().encode(`HTTP/1.1 ${status} No\r\n\r\n`));
      return conn.close();
    }
    const inner = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n"));
    await splice(conn, inner);
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) tasks.push(serve(conn).catch(() => {}));
    } catch {
      // Closed.
    }
  })();
  return {
    port: listener.addr.port,
    heads,
    async close() {
      listener.close();
      await loop;
      await Promise.allSettled(tasks);
    },
  };
}

Deno.test("HTTP_PROXY with credentials: CONNECT with Proxy-Authorization, then plain HTTP/1.1 kept alive", async () => {
  const hs = await startFakeHomeserver({ extraRoutes: () => Response.json({ ok: true }) });
  const proxy = startConnectProxy(hs.port);
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["8.8.8.8"] }),
    proxies: {
      httpsProxy: undefined,
      httpProxy: `http://us%40er:p%3Ass@127.0.0.1:${proxy.port}`,
      noProxy: [],
    },
  });
  try {
    for (let i = 0; i < 2; i++) {
      const res = await outbound.request({
        url: "http://hs.test/x?access_token=SECRET",
        timeoutMs: 5_000,
        maxBodyBytes: KIB,
        guard: GUARD,
      });
      assert.equal(res.status, 200);
    }
    assert.equal(proxy.heads.length, 1, "one tunnel, kept alive");
    assert.equal(
      proxy.heads[0],
      `CONNECT hs.test:80 HTTP/1.1\r\nHost: hs.test:80\r\nProxy-Authorization: Basic ${
        btoa("us@er:p:ss")
      }\r\n\r\n`,
    );
    assert.equal(hs.requests[0]?.authority, "hs.test");
    assert.equal(hs.requests[0]?.headers.get("proxy-authorization"), null);
  } finally {
    await outbound.close();
    await proxy.close();
    await hs.close();
  }
});

Deno.test("a proxy refusing the tunnel is a connect failure that names the proxy, not its credentials", async () => {
  const proxy = startConnectProxy(1, 407);
  const { outbound } = testOutbound({
    resolver: scriptedResolver({ "hs.test": ["8.8.8.8"] }),
    proxies: {
      httpsProxy: `http://user:hunter2@127.0.0.1:${proxy.port}`,
      httpProxy: undefined,
      noProxy: [],
    },
  });
  try {
    const err = await rejects(
      outbound.request({
        url: "https://hs.test/x",
        timeoutMs: 5_000,
        maxBodyBytes: KIB,
        guard: GUARD,
      }),
      "connect",
    );
    assert.match(err.message, /refused the tunnel with HTTP 407/);
    assert.match(err.message, new RegExp(`http://127\\.0\\.0\\.1:${proxy.port}`));
    assert.ok(!err.message.includes("hunter2"));
  } finally {
    await outbound.close();
    await proxy.close();
  }
});

Deno.test("https:// and socks5:// proxies are refused with a logged reason; NO_PROXY goes direct", async () => {
  for (const scheme of ["https", "socks5"]) {
    const log = captureLogger();
    const { outbound } = testOutbound({
      resolver: scriptedResolver({ "hs.test": ["8.8.8.8"] }),
      log,
      proxies: { httpsProxy: `${scheme}://proxy.test:3128`, httpProxy: undefined, noProxy: [] },
    });
    try {
      const err = await rejects(
        outbound.request({ url: "https://hs.test/", timeoutMs: 1000, maxBodyBytes: KIB }),
        "connect",
      );
      assert.match(err.message, new RegExp(`${scheme}:// proxies are not supported`));
      const warn = log.lines.find((l) => l.msg === "outbound proxy not usable");
      assert.match(String(warn?.fields.reason), /only http:\/\/ proxies/);
    } finally {
      await outbound.close();
    }
  }
  const hs = await startFakeHomeserver({ extraRoutes: () => Response.json({}) });
  const { outbound } = testOutbound({
    resolver: scriptedResolver(),
    proxies: {
      httpsProxy: undefined,
      httpProxy: "socks5://proxy.test:1080",
      noProxy: ["127.0.0.1"],
    },
  });
  try {
    const res = await outbound.request({
      url: `http://127.0.0.1:${hs.port}/x`,
      timeoutMs: 5_000,
      maxBodyBytes: KIB,
    });
    assert.equal(res.status, 200);
  } finally {
    await outbound.close();
    await hs.close();
  }
});
