import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { systemClock } from "../../lib/clock.ts";
import { silentLogger } from "../../lib/log.ts";
import { encodeField, JOBS_HASH } from "../../lib/store/codec.ts";
import { RedisBackend } from "../../lib/store/redis.ts";
import { parseRedisUrl } from "../../lib/config/redis_url.ts";
import { TestRedis } from "../fakes/redis.ts";
import { createTestCa } from "../fakes/tls.ts";

async function connected(url: string) {
  const backend = new RedisBackend(parseRedisUrl(url), { clock: systemClock, log: silentLogger });
  backend.connect();
  ok(await backend.waitReady(5_000), "connected");
  return backend;
}

Deno.test("redis backend: HSET/HGETALL/HDEL keep fields and values byte-exact", async () => {
  const redis = await TestRedis.start();
  const backend = await connected(redis.url);
  try {
    await backend.ping();
    const field = encodeField("room<&>", "id\u2028x");
    const value = '{"Params":{"DelayId":"é😀"}}';
    await backend.set(field, value);
    const raw = await redis.hgetall(JOBS_HASH);
    deepStrictEqual([...raw], [['["room\\u003c\\u0026\\u003e","id\\u2028x"]', value]]);
    deepStrictEqual([...await backend.getAll()], [[field, value]]);
    await backend.delete(field);
    strictEqual((await backend.getAll()).size, 0);
  } finally {
    await backend.close();
    await redis.dispose();
  }
});

Deno.test("redis backend: AUTH and SELECT from the URL", async () => {
  const redis = await TestRedis.start({ password: "s3cr:et" });
  const backend = await connected(
    `redis://:${encodeURIComponent("s3cr:et")}@127.0.0.1:${redis.port}/2`,
  );
  try {
    await backend.set("f", "v");
    strictEqual((await redis.hgetall(JOBS_HASH)).size, 0, "DB 0 untouched");
    strictEqual(await redis.command("SELECT", "2"), '"OK"');
    deepStrictEqual([...await backend.getAll()], [["f", "v"]]);
  } finally {
    await backend.close();
    await redis.dispose();
  }
});

Deno.test("redis backend: commands fail fast while Redis is down and work after it returns", async () => {
  const redis = await TestRedis.start();
  const backend = await connected(redis.url);
  try {
    await backend.set("a", "1");
    await redis.stop();
    const t0 = performance.now();
    await rejects(backend.set("b", "2"));
    ok(performance.now() - t0 < 1_000, "no offline queue");
    strictEqual(backend.ready, false);
    await redis.resume();
    ok(await backend.waitReady(10_000), "reconnected");
    await backend.set("b", "2");
    deepStrictEqual(Object.fromEntries(await backend.getAll()), { a: "1", b: "2" });
  } finally {
    await backend.close();
    await redis.dispose();
  }
});

Deno.test("redis backend: waitReady gives up when nothing answers", async () => {
  const redis = await TestRedis.start();
  await redis.stop();
  const backend = new RedisBackend(parseRedisUrl(redis.url), {
    clock: systemClock,
    log: silentLogger,
  });
  try {
    backend.connect();
    strictEqual(await backend.waitReady(300), false);
    ok(String(backend.lastError).includes("ECONNREFUSED"));
  } finally {
    await backend.close();
    await redis.dispose();
  }
});

Deno.test("redis backend: rediss:// verifies the server against the configured CA", async () => {
  const ca = await createTestCa();
  const redis = await TestRedis.start({
    tls: { certPath: ca.leaf.certPath, keyPath: ca.leaf.keyPath, caPem: ca.caCertPem },
  });
  const backend = new RedisBackend(parseRedisUrl(redis.url), {
    clock: systemClock,
    log: silentLogger,
    caCerts: [ca.caCertPem],
  });
  try {
    ok(redis.url.startsWith("rediss://"));
    backend.connect();
    ok(await backend.waitReady(5_000), "TLS connection ready");
    await backend.set("f", "v");
    deepStrictEqual([...await redis.hgetall(JOBS_HASH)], [["f", "v"]]);
  } finally {
    await backend.close();
    await redis.dispose();
  }
});

Deno.test("redis backend: rediss:// refuses a server certificate from an unknown CA", async () => {
  const ca = await createTestCa();
  const redis = await TestRedis.start({
    tls: { certPath: ca.leaf.certPath, keyPath: ca.leaf.keyPath, caPem: ca.caCertPem },
  });
  const backend = new RedisBackend(parseRedisUrl(redis.url), {
    clock: systemClock,
    log: silentLogger,
  });
  try {
    backend.connect();
    strictEqual(await backend.waitReady(1_500), false);
  } finally {
    await backend.close();
    await redis.dispose();
  }
});
