/**
 * Without replica settings the service uses Redis exactly as a single instance always did
 * (replicas.md R6, delegation.md §10.1 "Commands"): only `PING`, `HSET`, `HDEL` and `HGETALL`
 * on the one hash `lk-jwt:jobs`, no other key, no scripts, no streams. Counted with Redis's own
 * per-command statistics over a whole job life (register, restart, webhook, send, restore).
 */
import assert from "node:assert/strict";
import { TestRedis } from "../fakes/redis.ts";
import { until } from "../support/poll.ts";
import { Cluster } from "../support/replica_cluster.ts";

/** `INFO commandstats` as command → calls. */
async function commandStats(redis: TestRedis): Promise<Map<string, number>> {
  const text = JSON.parse(await redis.command("INFO", "commandstats")) as string;
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

Deno.test("single instance: Redis sees only PING/HSET/HDEL/HGETALL on lk-jwt:jobs (R6)", async () => {
  const redis = await TestRedis.start();
  const c = await Cluster.start({ ttlMs: 1_000, redis, replicas: false });
  try {
    await redis.command("CONFIG", "RESETSTAT");
    await c.startReplica("solo");
    const kept = c.newJob("solo", { present: true });
    const ended = c.newJob("solo", { present: true });
    assert.equal(await c.register(kept, 20_000), 200);
    assert.equal(await c.register(ended, 20_000), 200);
    await until(
      "restarts",
      () => c.calls(kept, "restart").length > 0 && c.calls(ended, "restart").length > 0,
    );
    assert.equal(await c.webhook("solo", "participant_left", ended, "CLIENT_INITIATED"), 200);
    await until("send", () => c.calls(ended, "send").length > 0);
    await until(
      "entry deleted",
      async () => !(await redis.hgetall("lk-jwt:jobs")).has(ended.field),
    );
    // A restart of the process restores from the hash.
    await c.kill("solo");
    await c.startReplica("solo");
    await until("restored job restarted", () => c.calls(kept, "restart").length > 1);
    assert.equal(await c.ready("solo"), 200, "no replica lease needed");

    const stats = await commandStats(redis);
    const service = [...stats.keys()].filter((k) =>
      // The test's own commands: CONFIG RESETSTAT, INFO, and HGETALL (reads the hash).
      !["config|resetstat", "info"].includes(k)
    );
    console.log(
      `  measured Redis commands of a single instance: ${
        JSON.stringify(Object.fromEntries(stats))
      }`,
    );
    assert.deepEqual(service.filter((k) => !["ping", "hset", "hdel", "hgetall"].includes(k)), []);
    assert.ok(stats.get("hset")! >= 3, "registrations and restart times");
    assert.ok(stats.get("hdel")! >= 1);
    const keys = JSON.parse(await redis.command("KEYS", "*")) as string[];
    assert.deepEqual(keys, ["lk-jwt:jobs"]);
  } finally {
    await c.close();
    await redis.dispose();
  }
});
