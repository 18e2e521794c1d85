/**
 * Several active replicas on one real `redis-server` (replicas.md §4), each a real process
 * started through the launcher: jobs are driven where they were registered, webhooks delivered
 * to any replica reach the owner, a replica killed with `kill -9` loses no job, a restarted
 * replica does not steal jobs back, a partitioned replica steps back, a replacement across
 * replicas stops the old job without sending. Each test states the bound it checks and prints
 * what it measured.
 */
import assert from "node:assert/strict";
import { decodeValue, encodeValue, formatRfc3339, JOBS_HASH } from "../../lib/store/codec.ts";
import { OWNERS_HASH } from "../../lib/replica/keys.ts";
import { until } from "../support/poll.ts";
import { Cluster, type TestJob } from "../support/replica_cluster.ts";

/** Lease of these tests: scan period 600 ms, takeover bound TTL + TTL/5 = 3.6 s. */
const TTL_MS = 3_000;
const TAKEOVER_BOUND_MS = TTL_MS + TTL_MS / 5;
/** T with 0.2·T (4 s) above TTL + one scan period (3.6 s): R3's "always" case. */
const T_MS = 20_000;
/** R4: a signal reaches the replica that drives the job within 1 s. */
const SIGNAL_BOUND_MS = 1_000;

function report(what: string, values: Record<string, number | string>): void {
  console.log(`  measured ${what}: ${JSON.stringify(values)}`);
}

async function owners(c: Cluster): Promise<Map<string, string>> {
  return await c.redis.hgetall(OWNERS_HASH);
}

Deno.test("replicas: jobs are driven where registered; webhooks on any replica reach the owner within 1 s (R1, R2, R4, R6)", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    for (const id of ["r1", "r2", "r3"]) await c.startReplica(id);
    const jobs: TestJob[] = [];
    for (const id of ["r1", "r2", "r3"]) {
      for (let i = 0; i < 2; i++) {
        const job = c.newJob(id);
        assert.equal(await c.register(job, T_MS), 200);
        jobs.push(job);
      }
    }
    // Persisted with ownership before the 200; the reference's format untouched (R6).
    const hash = await c.redis.hgetall(JOBS_HASH);
    const own = await owners(c);
    for (const job of jobs) {
      const stored = decodeValue(hash.get(job.field)!);
      assert.equal(stored.delayId, job.delayId);
      assert.equal(stored.delayTimeoutNs, BigInt(T_MS) * 1_000_000n);
      assert.equal(own.get(job.field), job.registeredOn);
    }
    for (const id of ["r1", "r2", "r3"]) assert.equal(await c.ready(id), 200);

    // participant_joined delivered to a replica that does not drive the job.
    const latencies: number[] = [];
    for (const [i, job] of jobs.entries()) {
      const other = ["r1", "r2", "r3"].filter((r) => r !== job.registeredOn)[i % 2]!;
      const sent = performance.now();
      assert.equal(await c.webhook(other, "participant_joined", job), 200);
      await until("restart by the owner", () => c.calls(job, "restart", sent).length > 0);
      const call = c.calls(job, "restart", sent)[0]!;
      assert.equal(Cluster.by(call), job.registeredOn, "only the owner restarts");
      latencies.push(call.at - sent);
    }
    report("webhook on a non-owner → restart by the owner (bound 1000 ms)", {
      max_ms: Math.round(Math.max(...latencies)),
      median_ms: Math.round(latencies.sort((a, b) => a - b)[latencies.length >> 1]!),
    });
    assert.ok(Math.max(...latencies) <= SIGNAL_BOUND_MS);
    for (const job of jobs) {
      assert.deepEqual(new Set(c.calls(job).map(Cluster.by)), new Set([job.registeredOn]));
    }

    // participant_left, again on a non-owner: the owner sends, job and owner entries go.
    const sends: number[] = [];
    for (const [i, job] of jobs.entries()) {
      const other = ["r1", "r2", "r3"].filter((r) => r !== job.registeredOn)[(i + 1) % 2]!;
      const sent = performance.now();
      assert.equal(await c.webhook(other, "participant_left", job, "CLIENT_INITIATED"), 200);
      await until("send by the owner", () => c.calls(job, "send").length > 0);
      const call = c.calls(job, "send")[0]!;
      assert.equal(Cluster.by(call), job.registeredOn);
      sends.push(call.at - sent);
    }
    report("leave on a non-owner → send by the owner (bound 1000 ms)", {
      max_ms: Math.round(Math.max(...sends)),
    });
    assert.ok(Math.max(...sends) <= SIGNAL_BOUND_MS);
    await until("entries removed", async () => {
      const [h, o] = [await c.redis.hgetall(JOBS_HASH), await owners(c)];
      return jobs.every((j) => !h.has(j.field) && !o.has(j.field));
    });
    // A webhook for a participant without any job is answered 200 and dropped.
    assert.equal(await c.webhook("r2", "participant_joined", c.newJob("r1")), 200);
  } finally {
    await c.close();
  }
});

Deno.test("replicas: kill -9 of a replica — survivors restart each of its jobs within TTL + TTL/5, share them, send on a leave delivered elsewhere; the restarted replica steals nothing back (R3, R4, R5)", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    for (const id of ["r1", "r2", "r3"]) await c.startReplica(id);
    const jobs: TestJob[] = [];
    for (let i = 0; i < 12; i++) {
      const job = c.newJob("r1", { present: true });
      assert.equal(await c.register(job, T_MS), 200);
      jobs.push(job);
    }
    await until(
      "first restart of every job by r1",
      () => jobs.every((j) => c.calls(j, "restart").some((call) => Cluster.by(call) === "r1")),
    );
    // A leave for one job reaches r1's stream just as r1 dies: the taker-over must see it.
    const pending = jobs[0]!;
    const killedAt = await c.kill("r1");
    assert.equal(await c.webhook("r2", "participant_left", pending, "CLIENT_INITIATED"), 200);

    await until(
      "a survivor's restart of every job",
      () => jobs.slice(1).every((j) => c.calls(j, "restart", killedAt).length > 0),
      TAKEOVER_BOUND_MS + 10_000,
    );
    const delays = jobs.slice(1).map((j) => c.calls(j, "restart", killedAt)[0]!.at - killedAt);
    const takers = jobs.slice(1).map((j) => Cluster.by(c.calls(j, "restart", killedAt)[0]!));
    report(`takeover after kill -9 (bound TTL + TTL/5 = ${TAKEOVER_BOUND_MS} ms)`, {
      last_job_restarted_ms: Math.round(Math.max(...delays)),
      first_job_restarted_ms: Math.round(Math.min(...delays)),
      r2: takers.filter((t) => t === "r2").length,
      r3: takers.filter((t) => t === "r3").length,
    });
    assert.ok(Math.max(...delays) <= TAKEOVER_BOUND_MS);
    assert.ok(takers.every((t) => t === "r2" || t === "r3"));
    assert.ok(takers.includes("r2") && takers.includes("r3"), "taken-over jobs are spread (R5)");

    // The leave that waited in r1's stream: sent by the taker-over, without a restart first.
    await until("send of the pending leave", () => c.calls(pending, "send").length > 0);
    const pendingSend = c.calls(pending, "send")[0]!;
    report("leave pending in the dead replica's stream → send by the taker-over", {
      after_kill_ms: Math.round(pendingSend.at - killedAt),
      by: Cluster.by(pendingSend),
    });
    const own = await owners(c);
    for (const [i, job] of jobs.slice(1).entries()) assert.equal(own.get(job.field), takers[i]);

    // r1 comes back with the same id: it takes a lease but none of its old jobs.
    const back = performance.now();
    await c.startReplica("r1");
    await until("r1 ready", async () => (await c.ready("r1")) === 200);
    assert.equal(await c.metric("r1", "lk_jwt_replica_jobs_owned"), 0);
    const ownAfter = await owners(c);
    for (const [i, job] of jobs.slice(1).entries()) {
      assert.equal(ownAfter.get(job.field), takers[i]);
    }
    // New work lands on r1 again.
    const fresh = c.newJob("r1", { present: true });
    assert.equal(await c.register(fresh, T_MS), 200);
    await until("r1 drives its new job", () => c.calls(fresh, "restart").length > 0);
    assert.equal(Cluster.by(c.calls(fresh, "restart")[0]!), "r1");

    // Leaves delivered to a replica that does not drive the job: sent by the new owner.
    for (const [i, job] of jobs.slice(1).entries()) {
      const other: string = takers[i] === "r2" ? "r3" : "r2";
      assert.equal(await c.webhook(other, "participant_left", job, "CLIENT_INITIATED"), 200);
    }
    await until("every leave sent", () => jobs.every((j) => c.calls(j, "send").length > 0));
    for (const [i, job] of jobs.slice(1).entries()) {
      assert.deepEqual(c.calls(job, "send").map(Cluster.by), [takers[i]]);
    }
    // r1 made no call for its old jobs after it came back.
    for (const job of jobs) {
      assert.equal(c.calls(job, undefined, back).filter((x) => Cluster.by(x) === "r1").length, 0);
    }
  } finally {
    await c.close();
  }
});

Deno.test("replicas: a partitioned replica (Redis port blocked) loses its jobs to the others and stops them once it sees its lease was gone (R2, R3, R7)", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    const p = await c.startReplica("r1", { partitionable: true });
    for (const id of ["r2", "r3"]) await c.startReplica(id);
    const jobs: TestJob[] = [];
    for (let i = 0; i < 6; i++) {
      const job = c.newJob("r1", { present: true });
      assert.equal(await c.register(job, T_MS), 200);
      jobs.push(job);
    }
    await until(
      "first restart of every job by r1",
      () => jobs.every((j) => c.calls(j, "restart").length > 0),
    );

    const cutAt = performance.now();
    p.proxy!.block();
    await until(
      "takeover of every job by r2/r3",
      () =>
        jobs.every((j) =>
          c.calls(j, "restart", cutAt).some((x) => Cluster.by(x) === "r2" || Cluster.by(x) === "r3")
        ),
      TAKEOVER_BOUND_MS + 10_000,
    );
    const taken = Math.max(
      ...jobs.map((j) =>
        c.calls(j, "restart", cutAt).find((x) => Cluster.by(x) !== "r1")!.at - cutAt
      ),
    );
    report(
      `takeover of a partitioned replica's jobs (bound TTL + TTL/5 = ${TAKEOVER_BOUND_MS} ms)`,
      {
        last_job_restarted_ms: Math.round(taken),
      },
    );
    assert.ok(taken <= TAKEOVER_BOUND_MS);
    // Cut off, r1 cannot tell a partition from Redis being down for everybody: its jobs still
    // run from memory (R7), and /readyz says it has no lease.
    await until("r1 not ready", async () => (await c.ready("r1")) === 503);
    assert.equal(await c.metric("r1", "lk_jwt_replica_jobs_owned"), 6);

    const healedAt = performance.now();
    p.proxy!.unblock();
    await until(
      "r1 stops the jobs it no longer owns",
      async () => (await c.metric("r1", "lk_jwt_replica_jobs_owned")) === 0,
    );
    const stepped = performance.now() - healedAt;
    await until("r1 ready again", async () => (await c.ready("r1")) === 200);
    report("partition healed → r1 stopped the taken-over jobs", { after_ms: Math.round(stepped) });
    const stoppedAt = performance.now();
    assert.match(c.replica("r1").svc.logs(), /handed to another replica; stopping it here/);
    const own = await owners(c);
    for (const job of jobs) assert.notEqual(own.get(job.field), "r1");
    // Leaves go to the new owners (delivered to r1, which forwards them now): one send each.
    for (const job of jobs) {
      assert.equal(await c.webhook("r1", "participant_left", job, "CLIENT_INITIATED"), 200);
    }
    await until("every leave sent", () => jobs.every((j) => c.calls(j, "send").length > 0));
    for (const job of jobs) {
      assert.equal(
        c.calls(job, undefined, stoppedAt).filter((x) => Cluster.by(x) === "r1").length,
        0,
      );
      assert.notEqual(Cluster.by(c.calls(job, "send")[0]!), "r1");
    }
  } finally {
    await c.close();
  }
});

Deno.test("replicas: a delegation replacing a job driven by another replica stops the old job there without sending, within 1 s (R4, replacement)", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    for (const id of ["r1", "r2"]) await c.startReplica(id);
    const old = c.newJob("r1", { present: true });
    assert.equal(await c.register(old, T_MS), 200);
    await until("r1 restarts the first delegation", () => c.calls(old, "restart").length > 0);
    // The same member delegates again (a new delay ID) through r2.
    const replacement: TestJob = { ...old, delayId: `${old.delayId}-2`, registeredOn: "r2" };
    assert.equal(await c.register(replacement, T_MS), 200);
    // The "replaced" signal was appended before that 200; the old job stops within R4's bound.
    const at = performance.now();
    await until(
      "r1 drops the replaced job",
      async () => (await c.metric("r1", "lk_jwt_replica_jobs_owned")) === 0,
      SIGNAL_BOUND_MS,
    );
    report("replacement on another replica → old job stopped (bound 1000 ms)", {
      after_ms: Math.round(performance.now() - at),
    });
    assert.equal((await owners(c)).get(old.field), "r2");
    await until("r2 drives the new delegation", () => c.calls(replacement, "restart").length > 0);
    assert.equal(Cluster.by(c.calls(replacement, "restart")[0]!), "r2");
    assert.equal(c.calls(old, "send").length, 0, "a replaced job is never sent");
    assert.equal(
      decodeValue((await c.redis.hgetall(JOBS_HASH)).get(old.field)!).delayId,
      replacement.delayId,
    );
  } finally {
    await c.close();
  }
});

Deno.test("replicas: SIGTERM hands the jobs over at once instead of after the TTL", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    for (const id of ["r1", "r2"]) await c.startReplica(id);
    const jobs: TestJob[] = [];
    for (let i = 0; i < 4; i++) {
      const job = c.newJob("r1", { present: true });
      assert.equal(await c.register(job, T_MS), 200);
      jobs.push(job);
    }
    await until("r1 restarts every job", () => jobs.every((j) => c.calls(j, "restart").length > 0));
    const at = performance.now();
    await c.stop("r1");
    // The lease is gone the moment the process exited, not a TTL later.
    assert.equal(JSON.parse(await c.redis.command("EXISTS", "lk-jwt:replica:r1")), 0);
    await until(
      "r2 restarts every job",
      () => jobs.every((j) => c.calls(j, "restart", at).some((x) => Cluster.by(x) === "r2")),
    );
    const after = Math.max(...jobs.map((j) => c.calls(j, "restart", at)[0]!.at - at));
    report(`hand-over on SIGTERM (lease given up on exit; TTL ${TTL_MS} ms not waited for)`, {
      last_job_restarted_ms: Math.round(after),
    });
    assert.equal(c.calls(jobs[0]!, "send").length, 0, "shutdown never sends");
  } finally {
    await c.close();
  }
});

Deno.test("replicas: Redis paused for everybody longer than the TTL — every replica keeps its own jobs, nobody takes over, nothing lost (R7)", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    for (const id of ["r1", "r2", "r3"]) await c.startReplica(id);
    const jobs: TestJob[] = [];
    for (const id of ["r1", "r2", "r3"]) {
      for (let i = 0; i < 2; i++) {
        const job = c.newJob(id, { present: true });
        assert.equal(await c.register(job, T_MS), 200);
        jobs.push(job);
      }
    }
    await until("first restarts", () => jobs.every((j) => c.calls(j, "restart").length > 0));
    const pausedAt = performance.now();
    await c.redis.command("CLIENT", "PAUSE", String(2 * TTL_MS), "ALL");
    await until(
      "Redis answers again",
      async () => (await c.redis.command("PING")).includes("PONG"),
      3 * TTL_MS,
    );
    // Every replica renews and scans at least 10 times after the pause (2 × TTL: past the one
    // TTL in which a replica that lost its lease takes nothing over): time for any takeover.
    const OK = 'lk_jwt_replica_lease_renewals_total{outcome="ok"}';
    const base = new Map<string, number>();
    for (const id of ["r1", "r2", "r3"]) base.set(id, (await c.metric(id, OK)) ?? 0);
    await until("10 renewals on every replica after the pause", async () => {
      for (const id of ["r1", "r2", "r3"]) {
        if (((await c.metric(id, OK)) ?? 0) < base.get(id)! + 10) return false;
      }
      return true;
    });
    const own = await owners(c);
    for (const job of jobs) {
      assert.equal(own.get(job.field), job.registeredOn, "ownership unchanged");
      assert.ok(
        c.calls(job).every((x) => Cluster.by(x) === job.registeredOn),
        "only the owner called",
      );
    }
    for (const id of ["r1", "r2", "r3"]) {
      assert.equal(await c.metric(id, "lk_jwt_replica_jobs_owned"), 2);
    }
    report("Redis paused 2 × TTL", {
      paused_ms: 2 * TTL_MS,
      waited_ms: Math.round(performance.now() - pausedAt),
    });
  } finally {
    await c.close();
  }
});

Deno.test("replicas: jobs without an owner (written by a single instance or the reference) are adopted by the first replica", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    const job = c.newJob("r1", { present: true });
    // Written as the reference implementation (or a single instance) writes it: no owner.
    await c.redis.hset(
      JOBS_HASH,
      job.field,
      encodeValue({
        delayId: job.delayId,
        delayTimeoutNs: BigInt(T_MS) * 1_000_000n,
        serverName: c.server,
        room: job.room,
        identity: job.identity,
        restartedAt: formatRfc3339(Date.now()),
      }),
    );
    await c.startReplica("r1");
    await c.startReplica("r2");
    await until("the adopted job is restarted", () => c.calls(job, "restart").length > 0);
    assert.equal(Cluster.by(c.calls(job, "restart")[0]!), "r1");
    assert.equal((await owners(c)).get(job.field), "r1");
  } finally {
    await c.close();
  }
});

Deno.test("replicas: a replica restarted at once with the same id waits for its old lease, then resumes its own jobs", async () => {
  const c = await Cluster.start({ ttlMs: TTL_MS });
  try {
    await c.startReplica("r1");
    const jobs: TestJob[] = [];
    for (let i = 0; i < 3; i++) {
      const job = c.newJob("r1", { present: true });
      assert.equal(await c.register(job, T_MS), 200);
      jobs.push(job);
    }
    await until("first restarts", () => jobs.every((j) => c.calls(j, "restart").length > 0));
    const killedAt = await c.kill("r1");
    await c.startReplica("r1");
    await until(
      "every job restarted again by r1",
      () => jobs.every((j) => c.calls(j, "restart", killedAt).some((x) => Cluster.by(x) === "r1")),
    );
    const after = Math.max(...jobs.map((j) => c.calls(j, "restart", killedAt)[0]!.at - killedAt));
    report("restart with the same id → own jobs resumed (old lease must expire first)", {
      after_kill_ms: Math.round(after),
      ttl_ms: TTL_MS,
    });
    assert.match(c.replica("r1").svc.logs(), /held by another process|Replica lease taken/);
    assert.ok(after < T_MS, "before the delayed events expire");
  } finally {
    await c.close();
  }
});
