/**
 * Redis that fails over (replicas.md R8, §4): two replicas of the service reach Redis through
 * three real `redis-sentinel` processes watching a master and a replica. `SENTINEL FAILOVER`,
 * then `kill -9` of the master, while jobs run and tokens are requested: tokens keep being
 * served, no job is lost, the service follows each promoted master and its writes land there,
 * signals still reach the owner.
 */
import assert from "node:assert/strict";
import { decodeValue, JOBS_HASH } from "../../lib/store/codec.ts";
import { OWNERS_HASH } from "../../lib/replica/keys.ts";
import { freePort, redisCli, SENTINEL_MASTER, TestSentinelSet } from "../fakes/sentinel.ts";
import { until } from "../support/poll.ts";
import { Cluster, type TestJob } from "../support/replica_cluster.ts";

const TTL_MS = 3_000;
/** Short T so that restarts (every 0.8·T = 4.8 s) happen on each new master during the test. */
const T_MS = 6_000;

function report(what: string, values: Record<string, number | string>): void {
  console.log(`  measured ${what}: ${JSON.stringify(values)}`);
}

/** Requests tokens from both replicas in a loop until stopped; collects the statuses. */
function tokenLoad(c: Cluster) {
  const statuses: number[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const job = c.newJob(i % 2 ? "r1" : "r2");
      const res = await fetch(`${c.replica(job.registeredOn).svc.url}/get_token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          room_id: "!load:example.com",
          slot_id: "m.call#ROOM",
          openid_token: {
            access_token: "alice-token",
            token_type: "Bearer",
            matrix_server_name: c.server,
            expires_in: 3600,
          },
          member: { id: job.member, claimed_user_id: `@alice:${c.server}`, claimed_device_id: "D" },
        }),
      });
      await res.body?.cancel();
      statuses.push(res.status);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    statuses,
    async stop() {
      running = false;
      await done;
    },
  };
}

Deno.test("sentinel: SENTINEL FAILOVER and kill -9 of the master during live jobs — tokens served, no job lost, writes land on the new master (R8)", async () => {
  const set = await TestSentinelSet.start();
  const c = await Cluster.start({
    ttlMs: TTL_MS,
    redisEnv: {
      LIVEKIT_REDIS_SENTINELS: set.sentinelsSetting,
      LIVEKIT_REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
    },
  });
  let load: ReturnType<typeof tokenLoad> | undefined;
  try {
    for (const id of ["r1", "r2"]) await c.startReplica(id);
    load = tokenLoad(c);
    const jobs: TestJob[] = [];
    for (const id of ["r1", "r2", "r1", "r2"]) {
      const job = c.newJob(id, { present: true });
      assert.equal(await c.register(job, T_MS), 200);
      jobs.push(job);
    }
    await until("first restarts", () => jobs.every((j) => c.calls(j, "restart").length > 0));

    /** After a switch: restarts by the owners land on `master`, new jobs and signals work. */
    const afterSwitch = async (master: number, label: string, since: number, sinceWall: number) => {
      await until(
        `every job restarted by its owner after ${label}`,
        () =>
          jobs.every((j) =>
            c.calls(j, "restart", since).some((x) => Cluster.by(x) === j.registeredOn)
          ),
        30_000,
      );
      await until(`restart times written to the new master after ${label}`, async () => {
        const hash = await set.hgetall(master, JOBS_HASH);
        return jobs.every((j) => {
          const v = hash.get(j.field);
          return v !== undefined && decodeValue(v).restartedAtMs > sinceWall;
        });
      }, 30_000);
      const owners = await set.hgetall(master, OWNERS_HASH);
      for (const job of jobs) assert.equal(owners.get(job.field), job.registeredOn);
      const fresh = c.newJob("r2", { present: true });
      assert.equal(await c.register(fresh, T_MS), 200);
      assert.ok((await set.hgetall(master, JOBS_HASH)).has(fresh.field), "new job on new master");
      // A webhook on the non-owner still reaches the owner through the new master's streams.
      const sent = performance.now();
      assert.equal(await c.webhook("r1", "participant_left", fresh, "CLIENT_INITIATED"), 200);
      await until("send by the owner", () => c.calls(fresh, "send").length > 0, 5_000);
      assert.equal(Cluster.by(c.calls(fresh, "send")[0]!), "r2");
      return Math.round(c.calls(fresh, "send")[0]!.at - sent);
    };

    const m0 = await set.masterPort();
    let t = performance.now();
    let wall = Date.now();
    const m1 = await set.failover();
    const switchMs = Math.round(performance.now() - t);
    const signal1 = await afterSwitch(m1, "SENTINEL FAILOVER", t, wall);
    report("SENTINEL FAILOVER", { from: m0, to: m1, switch_ms: switchMs, signal_ms: signal1 });

    t = performance.now();
    wall = Date.now();
    const m2 = await set.killMaster();
    const promoteMs = Math.round(performance.now() - t);
    const signal2 = await afterSwitch(m2, "kill -9 of the master", t, wall);
    report("kill -9 of the master", {
      from: m1,
      to: m2,
      promoted_ms: promoteMs,
      signal_ms: signal2,
    });

    await load.stop();
    const failed = load.statuses.filter((s) => s !== 200).length;
    report("tokens during both switches", { requests: load.statuses.length, failed });
    assert.equal(failed, 0, "token issuing does not depend on Redis");
    for (const job of jobs) assert.equal(c.calls(job, "send").length, 0, "no job ended");
    let owned = 0;
    for (const id of ["r1", "r2"]) owned += (await c.metric(id, "lk_jwt_replica_jobs_owned")) ?? 0;
    assert.equal(owned, jobs.length, "no job lost");
  } finally {
    await load?.stop();
    await c.close();
    await set.dispose();
  }
});

Deno.test("sentinel: a single instance (no replica settings) follows the promoted master", async () => {
  const set = await TestSentinelSet.start();
  const c = await Cluster.start({
    ttlMs: TTL_MS,
    replicas: false,
    redisEnv: {
      LIVEKIT_REDIS_SENTINELS: set.sentinelsSetting,
      LIVEKIT_REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
    },
  });
  try {
    await c.startReplica("solo");
    const job = c.newJob("solo", { present: true });
    assert.equal(await c.register(job, T_MS), 200);
    assert.ok((await set.hgetall(await set.masterPort(), JOBS_HASH)).has(job.field));
    const t = performance.now();
    const wall = Date.now();
    const master = await set.failover();
    await until("restart written to the new master", async () => {
      const v = (await set.hgetall(master, JOBS_HASH)).get(job.field);
      return v !== undefined && decodeValue(v).restartedAtMs > wall;
    }, 30_000);
    assert.ok(c.calls(job, "restart", t).length > 0);
    const fresh = c.newJob("solo", { present: true });
    assert.equal(await c.register(fresh, T_MS), 200);
    assert.ok((await set.hgetall(master, JOBS_HASH)).has(fresh.field));
    // Single-instance traffic: nothing but the jobs hash on the new master.
    assert.deepEqual(await redisCli(master, "KEYS", "*"), ["lk-jwt:jobs"]);
  } finally {
    await c.close();
    await set.dispose();
  }
});

Deno.test("sentinel: Sentinels unreachable at start — tokens and jobs are served, and the jobs reach Redis once the Sentinels answer", async () => {
  const ports = [freePort(), freePort(), freePort()];
  const c = await Cluster.start({
    ttlMs: TTL_MS,
    replicas: false,
    redisEnv: {
      LIVEKIT_REDIS_SENTINELS: ports.map((p) => `127.0.0.1:${p}`).join(","),
      LIVEKIT_REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
    },
  });
  let set: TestSentinelSet | undefined;
  try {
    const svc = await c.startReplica("solo");
    await svc.svc.waitForLog(/Could not connect Redis store/);
    const job = c.newJob("solo", { present: true });
    assert.equal(await c.register(job, 20_000), 200, "registration answered without Redis");
    await until("the job runs from memory", () => c.calls(job, "restart").length > 0);
    set = await TestSentinelSet.start({ sentinelPorts: ports });
    const master = await set.masterPort();
    const t = performance.now();
    await until(
      "the job written to the master",
      async () => (await set!.hgetall(master, JOBS_HASH)).has(job.field),
      60_000,
    );
    report("Sentinels up → pending job written", { after_ms: Math.round(performance.now() - t) });
    assert.equal(await c.ready("solo"), 200);
  } finally {
    await c.close();
    await set?.dispose();
  }
});
