/** The replica scripts (replicas.md §3) against a real redis-server, one rule per test. */
import assert from "node:assert/strict";
import { systemClock } from "../../lib/clock.ts";
import { silentLogger } from "../../lib/log.ts";
import {
  JOBS_HASH,
  leaseKey,
  OWNERS_HASH,
  REPLICAS_ZSET,
  STREAM_MAXLEN,
  STREAM_PREFIX,
  streamKey,
} from "../../lib/replica/keys.ts";
import {
  CLAIM,
  FORWARD,
  LEASE,
  LIST_OWNED,
  OWN,
  RELEASE_JOB,
  RELEASE_LEASE,
  runScript,
  TOUCH,
} from "../../lib/replica/scripts.ts";
import { parseEntries } from "../../lib/replica/signals.ts";
import { RedisConnection } from "../../lib/store/redis_connection.ts";
import { parseRedisUrl } from "../../lib/config/redis_url.ts";
import { TestRedis } from "../fakes/redis.ts";

async function withRedis(fn: (run: Runner, redis: TestRedis) => Promise<void>): Promise<void> {
  const redis = await TestRedis.start();
  const target = parseRedisUrl(redis.url);
  const conn = new RedisConnection({ target, display: target.display }, {
    clock: systemClock,
    log: silentLogger,
  });
  conn.connect();
  assert.ok(await conn.waitReady(5_000));
  const command = (args: string[]) => conn.command(args);
  const run: Runner = (s, keys, args) => runScript(command, s, keys, args);
  try {
    await fn(run, redis);
  } finally {
    await conn.close();
    await redis.dispose();
  }
}

type Runner = (
  s: typeof LEASE,
  keys: string[],
  args: string[],
) => Promise<unknown>;

const own = (run: Runner, field: string, value: string, me: string) =>
  run(OWN, [JOBS_HASH, OWNERS_HASH], [field, value, me, STREAM_PREFIX, String(STREAM_MAXLEN), "1"]);

Deno.test("LEASE: taken (2), renewed (1), refused to another token (0 + PTTL), listed with expiry", async () => {
  await withRedis(async (run, redis) => {
    const keys = [leaseKey("a"), REPLICAS_ZSET];
    const first = await run(LEASE, keys, ["a", "tok1", "5000"]) as [number, number, string[]];
    assert.equal(first[0], 2);
    const renewed = await run(LEASE, keys, ["a", "tok1", "5000"]) as [number, number, string[]];
    assert.equal(renewed[0], 1);
    assert.equal(renewed[2][0], "a");
    assert.ok(Number(renewed[2][1]) > renewed[1], "score = expiry in Redis time");
    const other = await run(LEASE, keys, ["a", "tok2", "5000"]) as [number, number, number];
    assert.equal(other[0], 0);
    assert.ok(other[2] > 4_000 && other[2] <= 5_000);
    assert.equal(await run(RELEASE_LEASE, keys, ["a", "tok2"]), 0, "only the holder releases");
    assert.equal(await run(RELEASE_LEASE, keys, ["a", "tok1"]), 1);
    assert.equal(JSON.parse(await redis.command("EXISTS", leaseKey("a"))), 0);
    assert.equal(JSON.parse(await redis.command("ZSCORE", REPLICAS_ZSET, "a")), "0");
  });
});

Deno.test("OWN: job and owner written together; the previous owner gets a 'replaced' signal", async () => {
  await withRedis(async (run, redis) => {
    assert.equal(await own(run, "f1", "v1", "a"), null);
    assert.equal(await own(run, "f1", "v2", "a"), "a");
    assert.equal(await redis.command("XLEN", streamKey("a")), "0");
    assert.equal(await own(run, "f1", "v3", "b"), "a");
    assert.equal((await redis.hgetall(JOBS_HASH)).get("f1"), "v3");
    assert.equal((await redis.hgetall(OWNERS_HASH)).get("f1"), "b");
    const entries = parseEntries(
      JSON.parse(await redis.command("XRANGE", streamKey("a"), "-", "+")),
    );
    assert.deepEqual(entries.map((e) => [e.field, e.signal]), [["f1", "replaced"]]);
  });
});

Deno.test("TOUCH: writes owned fields, owns fields without owner, reports fields owned elsewhere", async () => {
  await withRedis(async (run, redis) => {
    await own(run, "mine", "old", "a");
    await own(run, "theirs", "old", "b");
    const lost = await run(TOUCH, [JOBS_HASH, OWNERS_HASH], [
      "a",
      "mine",
      "new1",
      "theirs",
      "new2",
      "orphan",
      "new3",
    ]);
    assert.deepEqual(lost, ["theirs"]);
    const jobs = await redis.hgetall(JOBS_HASH);
    assert.deepEqual([jobs.get("mine"), jobs.get("theirs"), jobs.get("orphan")], [
      "new1",
      "old",
      "new3",
    ]);
    assert.equal((await redis.hgetall(OWNERS_HASH)).get("orphan"), "a");
  });
});

Deno.test("RELEASE_JOB: only the owner (or nobody) deletes job and owner", async () => {
  await withRedis(async (run, redis) => {
    await own(run, "f", "v", "b");
    assert.equal(await run(RELEASE_JOB, [JOBS_HASH, OWNERS_HASH], ["f", "a"]), 0);
    assert.ok((await redis.hgetall(JOBS_HASH)).has("f"));
    assert.equal(await run(RELEASE_JOB, [JOBS_HASH, OWNERS_HASH], ["f", "b"]), 1);
    assert.equal((await redis.hgetall(JOBS_HASH)).size, 0);
    assert.equal((await redis.hgetall(OWNERS_HASH)).size, 0);
    await redis.hset(JOBS_HASH, "lone", "v");
    assert.equal(await run(RELEASE_JOB, [JOBS_HASH, OWNERS_HASH], ["lone", "a"]), 1);
  });
});

Deno.test("FORWARD: no owner → 0, own → 1, other → appended to its stream", async () => {
  await withRedis(async (run, redis) => {
    const forward = (field: string, me: string) =>
      run(FORWARD, [OWNERS_HASH], [
        field,
        me,
        STREAM_PREFIX,
        String(STREAM_MAXLEN),
        "ParticipantConnected",
        "1234",
      ]);
    assert.deepEqual(await forward("f", "a"), [0]);
    await own(run, "f", "v", "b");
    assert.deepEqual(await forward("f", "b"), [1]);
    assert.deepEqual(await forward("f", "a"), [2, "b"]);
    const entries = parseEntries(
      JSON.parse(await redis.command("XRANGE", streamKey("b"), "-", "+")),
    );
    assert.deepEqual(entries.map((e) => [e.field, e.signal, e.sentAtMs]), [[
      "f",
      "ParticipantConnected",
      1234,
    ]]);
  });
});

Deno.test("LIST_OWNED and CLAIM: a dead replica's fields, claimed by compare-and-set with their waiting signals", async () => {
  await withRedis(async (run, redis) => {
    for (const f of ["f1", "f2", "f3"]) await own(run, f, `v-${f}`, "dead");
    await own(run, "g", "v-g", "alive");
    for (const f of ["f1", "f3", "g"]) {
      await run(FORWARD, [OWNERS_HASH], [
        f,
        "x",
        STREAM_PREFIX,
        "100",
        "ParticipantConnected",
        "1",
      ]);
    }
    const listKeys = [OWNERS_HASH, leaseKey("dead"), streamKey("dead"), REPLICAS_ZSET];
    await redis.command("SET", leaseKey("dead"), "tok", "PX", "60000");
    assert.equal(await run(LIST_OWNED, listKeys, ["dead"]), null, "alive while its lease exists");
    await redis.command("DEL", leaseKey("dead"));
    assert.deepEqual(
      new Set(await run(LIST_OWNED, listKeys, ["dead"]) as string[]),
      new Set(["f1", "f2", "f3"]),
    );

    const claimKeys = [OWNERS_HASH, JOBS_HASH, leaseKey("dead"), streamKey("dead")];
    const [claimed, signals] = await run(CLAIM, claimKeys, ["dead", "me", "f1", "g"]) as [
      string[],
      unknown,
    ];
    assert.deepEqual(claimed, ["f1", "v-f1"], "g is not the dead replica's");
    assert.deepEqual(parseEntries(signals).map((e) => e.field), ["f1"]);
    await run(CLAIM, claimKeys, ["dead", "other", "f1", "f2", "f3"]);
    const owners = await redis.hgetall(OWNERS_HASH);
    assert.deepEqual([owners.get("f1"), owners.get("f2"), owners.get("f3")], [
      "me",
      "other",
      "other",
    ]);
    // Nothing left: the dead replica's stream and listing go.
    await redis.command("ZADD", REPLICAS_ZSET, "0", "dead");
    assert.deepEqual(await run(LIST_OWNED, listKeys, ["dead"]), []);
    assert.equal(JSON.parse(await redis.command("EXISTS", streamKey("dead"))), 0);
    assert.equal(JSON.parse(await redis.command("ZSCORE", REPLICAS_ZSET, "dead")), null);
  });
});

Deno.test("CLAIM of jobs without owner (from = ''); a claim is refused while the lease exists", async () => {
  await withRedis(async (run, redis) => {
    await redis.hset(JOBS_HASH, "orphan", "v");
    await own(run, "owned", "w", "b");
    const keys = [OWNERS_HASH, JOBS_HASH, leaseKey(""), streamKey("")];
    const [claimed] = await run(CLAIM, keys, ["", "me", "orphan", "owned"]) as [string[]];
    assert.deepEqual(claimed, ["orphan", "v"]);
    await redis.command("SET", leaseKey("b"), "tok");
    assert.equal(
      await run(CLAIM, [OWNERS_HASH, JOBS_HASH, leaseKey("b"), streamKey("b")], [
        "b",
        "me",
        "owned",
      ]),
      null,
    );
  });
});

Deno.test("scripts: EVALSHA falls back to EVAL when the server lost its script cache", async () => {
  await withRedis(async (run, redis) => {
    await own(run, "f", "v", "a");
    await redis.command("SCRIPT", "FLUSH");
    assert.equal(await own(run, "f", "v2", "a"), "a");
  });
});
