/** Replica and Sentinel settings (replicas.md §2, R6, R8; configuration.md §5 wording). */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../lib/config/config.ts";

const BASE = {
  LIVEKIT_URL: "wss://sfu.example.com",
  LIVEKIT_KEY: "devkey",
  LIVEKIT_SECRET: "devsecret-devsecret-devsecret-devsecret",
  LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com",
};

function load(env: Record<string, string>) {
  return loadConfig({
    env: (n) => env[n],
    readTextFile: () => {
      throw new Error("no files");
    },
  });
}

function problems(env: Record<string, string>): string[] {
  try {
    load(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

Deno.test("replica settings: off by default, the single-instance behaviour (R6)", () => {
  const { config } = load({ ...BASE, LIVEKIT_REDIS_URL: "redis://127.0.0.1:6379" });
  assert.equal(config.replica, undefined);
  assert.equal(config.redisSentinel, undefined);
  assert.equal(config.redisPassword, undefined);
  assert.equal(load({ ...BASE, LIVEKIT_REPLICAS: "false" }).config.replica, undefined);
});

Deno.test("replica settings: LIVEKIT_REPLICAS=true with Redis, id and TTL", () => {
  const { config } = load({
    ...BASE,
    LIVEKIT_REDIS_URL: "redis://127.0.0.1:6379",
    LIVEKIT_REPLICAS: "TRUE",
    LIVEKIT_REPLICA_ID: "lk-jwt-service-7d9f8b6c5-x2kqp",
    LIVEKIT_REPLICA_TTL_MS: "3000",
  });
  assert.deepEqual(config.replica, { id: "lk-jwt-service-7d9f8b6c5-x2kqp", ttlMs: 3000 });
  const defaults = load({ ...BASE, LIVEKIT_REDIS_URL: "redis://h", LIVEKIT_REPLICAS: "1" });
  assert.deepEqual(defaults.config.replica, { id: undefined, ttlMs: 5000 });
});

Deno.test("replica settings: LIVEKIT_REPLICAS requires Redis (startup error)", () => {
  assert.deepEqual(problems({ ...BASE, LIVEKIT_REPLICAS: "true" }), [
    'LIVEKIT_REPLICAS must be false while no Redis is configured (set LIVEKIT_REDIS_URL or LIVEKIT_REDIS_SENTINELS), got "true"',
  ]);
  assert.deepEqual(problems({ ...BASE, LIVEKIT_REPLICAS: "yes" }), [
    'LIVEKIT_REPLICAS must be true or false, got "yes"',
  ]);
});

Deno.test("replica settings: id and TTL validation", () => {
  const env = { ...BASE, LIVEKIT_REDIS_URL: "redis://h", LIVEKIT_REPLICAS: "true" };
  assert.deepEqual(problems({ ...env, LIVEKIT_REPLICA_ID: "pod/1" }), [
    'LIVEKIT_REPLICA_ID must be 1 to 128 letters, digits, ".", "_" or "-", got "pod/1"',
  ]);
  assert.deepEqual(problems({ ...env, LIVEKIT_REPLICA_ID: "a".repeat(129) }).length, 1);
  for (const ttl of ["999", "600001", "5s", "-1"]) {
    assert.deepEqual(problems({ ...env, LIVEKIT_REPLICA_TTL_MS: ttl }), [
      `LIVEKIT_REPLICA_TTL_MS must be an integer between 1000 and 600000, got "${ttl}"`,
    ]);
  }
  assert.equal(load({ ...env, LIVEKIT_REPLICA_TTL_MS: "1000" }).config.replica?.ttlMs, 1000);
});

Deno.test("Sentinel settings: nodes, master, default port, IPv6", () => {
  const { config, notes } = load({
    ...BASE,
    LIVEKIT_REDIS_SENTINELS: "sentinel-0.redis:26379, Sentinel-1.redis [fd00::7]:5000",
    LIVEKIT_REDIS_SENTINEL_MASTER: "mymaster",
  });
  assert.deepEqual(config.redisSentinel, {
    nodes: [
      { host: "sentinel-0.redis", port: 26379 },
      { host: "sentinel-1.redis", port: 26379 },
      { host: "fd00::7", port: 5000 },
    ],
    master: "mymaster",
  });
  assert.equal(config.redisUrl, undefined);
  assert.ok(
    !notes.some((n) => n.message.includes("Using in-memory store")),
    "Sentinel alone is a Redis configuration",
  );
  // Sentinel is enough for replica mode.
  const replicas = load({
    ...BASE,
    LIVEKIT_REDIS_SENTINELS: "127.0.0.1:26379",
    LIVEKIT_REDIS_SENTINEL_MASTER: "m",
    LIVEKIT_REPLICAS: "true",
  });
  assert.ok(replicas.config.replica);
});

Deno.test("Sentinel settings: errors", () => {
  assert.deepEqual(
    problems({ ...BASE, LIVEKIT_REDIS_SENTINELS: "a:1,b:notaport,c:2:3" }),
    [
      'LIVEKIT_REDIS_SENTINELS must be a list of host:port addresses, got "b:notaport"',
      'LIVEKIT_REDIS_SENTINELS must be a list of host:port addresses, got "c:2:3"',
      'LIVEKIT_REDIS_SENTINEL_MASTER must be the name of the master the Sentinels monitor when LIVEKIT_REDIS_SENTINELS is set, got ""',
    ],
  );
  assert.deepEqual(problems({ ...BASE, LIVEKIT_REDIS_SENTINEL_MASTER: "m" }), [
    'LIVEKIT_REDIS_SENTINELS must list the Sentinel addresses when LIVEKIT_REDIS_SENTINEL_MASTER is set, got ""',
  ]);
  assert.deepEqual(
    problems({
      ...BASE,
      LIVEKIT_REDIS_SENTINELS: "a:1",
      LIVEKIT_REDIS_SENTINEL_MASTER: "m",
      LIVEKIT_REDIS_URL: "unix:///run/redis.sock",
    }),
    [
      'LIVEKIT_REDIS_URL must be a redis:// or rediss:// URL when LIVEKIT_REDIS_SENTINELS is set, got "unix://…"',
    ],
  );
});

Deno.test("LIVEKIT_REDIS_PASSWORD is a secret, also without Sentinel", () => {
  const { config } = load({
    ...BASE,
    LIVEKIT_REDIS_URL: "redis://127.0.0.1:6379",
    LIVEKIT_REDIS_PASSWORD: "hunter2",
  });
  assert.equal(config.redisPassword?.reveal(), "hunter2");
  assert.ok(!String(config.redisPassword).includes("hunter2"));
  assert.ok(!JSON.stringify(config.redisPassword).includes("hunter2"));
});

Deno.test("replica problems come after the other settings (configuration.md §1 order)", () => {
  const list = problems({
    ...BASE,
    LIVEKIT_REPLICAS: "maybe",
    LIVEKIT_MAX_JOBS: "0",
  });
  assert.deepEqual(list, [
    'LIVEKIT_MAX_JOBS must be an integer >= 1, got "0"',
    'LIVEKIT_REPLICAS must be true or false, got "maybe"',
  ]);
});
