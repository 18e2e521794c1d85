/**
 * Where the service finds Redis (replicas.md R8): `LIVEKIT_REDIS_PASSWORD` replaces the URL's
 * password (also without Sentinel); with Sentinel the URL only gives credentials, database and
 * TLS, and logs name the master and the Sentinels, never a password.
 */
import assert from "node:assert/strict";
import { systemClock } from "../../lib/clock.ts";
import { loadConfig } from "../../lib/config/config.ts";
import { redisEndpoint } from "../../lib/config/redis_url.ts";
import { silentLogger } from "../../lib/log.ts";
import { RedisBackend } from "../../lib/store/redis.ts";
import { TestRedis } from "../fakes/redis.ts";

function config(env: Record<string, string>) {
  return loadConfig({
    env: (n) =>
      ({
        LIVEKIT_URL: "ws://127.0.0.1:7880",
        LIVEKIT_KEY: "k",
        LIVEKIT_SECRET: "s".repeat(32),
        ...env,
      })[n],
    readTextFile: () => {
      throw new Error("no files");
    },
  }).config;
}

Deno.test("LIVEKIT_REDIS_PASSWORD authenticates a URL without password", async () => {
  const redis = await TestRedis.start({ password: "p@ss/word" });
  const endpoint = redisEndpoint(config({
    LIVEKIT_REDIS_URL: `redis://127.0.0.1:${redis.port}/3`,
    LIVEKIT_REDIS_PASSWORD: "p@ss/word",
  }))!;
  assert.equal(endpoint.target.password, "p@ss/word");
  assert.equal(endpoint.target.database, 3);
  assert.ok(!endpoint.display.includes("p@ss"));
  const backend = new RedisBackend(endpoint, { clock: systemClock, log: silentLogger });
  try {
    backend.connect();
    assert.ok(await backend.waitReady(5_000));
    await backend.ping();
    await backend.set("f", "v");
    assert.deepEqual([...(await backend.getAll())], [["f", "v"]]);
  } finally {
    await backend.close();
    await redis.dispose();
  }
});

Deno.test("LIVEKIT_REDIS_PASSWORD wins over the URL's password", () => {
  const endpoint = redisEndpoint(config({
    LIVEKIT_REDIS_URL: "redis://user:old@redis:6379",
    LIVEKIT_REDIS_PASSWORD: "new",
  }))!;
  assert.equal(endpoint.target.username, "user");
  assert.equal(endpoint.target.password, "new");
});

Deno.test("Sentinel endpoint: credentials, database and TLS from the URL; display without secrets", () => {
  const endpoint = redisEndpoint(config({
    LIVEKIT_REDIS_URL: "rediss://:secret@ignored:1/2",
    LIVEKIT_REDIS_SENTINELS: "s1:26379,[fd00::1]:26380",
    LIVEKIT_REDIS_SENTINEL_MASTER: "mymaster",
  }))!;
  assert.equal(endpoint.target.transport, "tls");
  assert.equal(endpoint.target.password, "secret");
  assert.equal(endpoint.target.database, 2);
  assert.equal(endpoint.display, "sentinel mymaster via s1:26379,[fd00::1]:26380");
  const bare = redisEndpoint(config({
    LIVEKIT_REDIS_SENTINELS: "127.0.0.1:26379",
    LIVEKIT_REDIS_SENTINEL_MASTER: "m",
  }))!;
  assert.deepEqual([bare.target.transport, bare.target.database, bare.target.password], [
    "tcp",
    0,
    undefined,
  ]);
  assert.equal(redisEndpoint(config({})), undefined);
});
