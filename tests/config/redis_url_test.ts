import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { parseRedisUrl } from "../../lib/config/redis_url.ts";

Deno.test("redis url: redis:// with defaults", () => {
  deepStrictEqual(parseRedisUrl("redis://redis.internal"), {
    transport: "tcp",
    host: "redis.internal",
    port: 6379,
    path: "",
    username: undefined,
    password: undefined,
    database: 0,
    ignoredParams: [],
    display: "redis.internal:6379",
  });
});

Deno.test("redis url: user, password (percent-decoded), port and database", () => {
  const t = parseRedisUrl("redis://lk:p%40ss%3Aw@10.0.0.5:6380/3");
  strictEqual(t.username, "lk");
  strictEqual(t.password, "p@ss:w");
  strictEqual(t.port, 6380);
  strictEqual(t.database, 3);
  strictEqual(t.display, "10.0.0.5:6380");
  strictEqual(parseRedisUrl("redis://:secret@h").password, "secret");
  strictEqual(parseRedisUrl("redis://:secret@h").username, undefined);
});

Deno.test("redis url: rediss:// is TLS, IPv6 brackets removed", () => {
  const t = parseRedisUrl("rediss://[::1]:7000/0");
  strictEqual(t.transport, "tls");
  strictEqual(t.host, "::1");
  strictEqual(t.port, 7000);
});

Deno.test("redis url: unix:///path?db=N", () => {
  const t = parseRedisUrl("unix:///run/redis/redis.sock?db=2");
  strictEqual(t.transport, "unix");
  strictEqual(t.path, "/run/redis/redis.sock");
  strictEqual(t.database, 2);
  strictEqual(parseRedisUrl("unix:///tmp/r.sock").database, 0);
});

Deno.test("redis url: unknown query parameters are reported for the WARN", () => {
  deepStrictEqual(parseRedisUrl("redis://h/1?timeout=5&x=1").ignoredParams, ["timeout", "x"]);
  deepStrictEqual(parseRedisUrl("unix:///s?db=1&foo=2").ignoredParams, ["foo"]);
});

Deno.test("redis url: invalid forms", () => {
  throws(() => parseRedisUrl("localhost:6379"), /not an absolute URL|unsupported scheme/);
  throws(() => parseRedisUrl("http://h"), /unsupported scheme "http"/);
  throws(() => parseRedisUrl("redis://h/abc"), /invalid database number "abc"/);
  throws(() => parseRedisUrl("unix://"), /missing socket path/);
});
