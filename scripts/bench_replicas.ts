/**
 * Replica benchmark (docs/performance.md, replicas.md §4): 3 replicas × 10 000 connected jobs at
 * T = 10 s on one `redis-server`, next to a single instance with the same load per process.
 *
 * Every service runs in a process of its own (`--role=service`): the real delegation stack
 * (`startDelegation`: job manager, scheduler, store or replica coordination, the real outbound
 * HTTP client), the system clock, a participant lookup that always answers "present", and a
 * delayed-events endpoint in another process (`--role=endpoint`) that counts calls and
 * remembers, per delay ID, who restarted it last and when. All services register their jobs at
 * the same moment, spread over one restart period, warm up, then measure over the same window:
 *
 * - per service: CPU (`process.cpuUsage()`, % of one core) and RSS added by the jobs;
 * - Redis: operations per second (`total_commands_processed` of `INFO stats` over the window);
 * - takeover (replicas only): `kill -9` of one replica, then the time until the last of its
 *   jobs was restarted by a survivor.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc,--max-semi-space-size=4 scripts/bench_replicas.ts \
 *   [--jobs=10000] [--timeout-ms=10000] [--replicas=3] [--rounds=3] [--warmup-s=15] \
 *   [--measure-s=30] [--ttl-ms=5000] [--single=redis|memory|both|none]
 * ```
 *
 * Run it alone on the machine (it keeps two cores busy for minutes).
 *
 * @module
 */
import process from "node:process";
import { systemClock } from "../lib/clock.ts";
import { loadConfig } from "../lib/config/config.ts";
import { startDelegation } from "../lib/delegation/setup.ts";
import type { CsApiResolver, ParticipantLookup } from "../lib/delegation/ports.ts";
import {
  type DelayId,
  type LiveKitIdentity,
  type LiveKitRoomAlias,
  Secret,
  serverName,
  userId,
} from "../lib/ids.ts";
import { createLogger } from "../lib/log.ts";
import type { Resolver } from "../lib/net/dns.ts";
import { createOutbound } from "../lib/net/outbound.ts";
import { NO_PROXIES } from "../lib/net/proxy_env.ts";
import { createOutboundPolicy } from "../lib/net/ssrf.ts";

function arg(name: string, fallback: string): string {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}
const num = (name: string, fallback: number) => {
  const n = Number(arg(name, String(fallback)));
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`--${name} must be a number`);
  return n;
};

const ROLE = arg("role", "main");
const JOBS = num("jobs", 10_000);
const T = num("timeout-ms", 10_000);
const PERIOD_MS = Math.max(0.8 * T, 250);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc;

// ---------------------------------------------------------------------------------------------
// Endpoint: counts restarts, remembers per delay ID the first restart by someone else after a
// mark (the kill), for the takeover time.

if (ROLE === "endpoint") {
  let restarts = 0;
  let sends = 0;
  let mark: { dead: string; at: number } | undefined;
  const firstAfter = new Map<string, number>();
  const PATH =
    /^\/([^/]+)\/_matrix\/client\/unstable\/org\.matrix\.msc4140\/delayed_events\/([^/]+)\/([a-z]+)$/;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const url = new URL(req.url);
    if (url.pathname === "/__counts") return Response.json({ restarts, sends });
    if (url.pathname === "/__mark") {
      mark = { dead: url.searchParams.get("dead")!, at: Number(url.searchParams.get("at")) };
      firstAfter.clear();
      return Response.json({});
    }
    if (url.pathname === "/__takeover") {
      let last = 0;
      for (const at of firstAfter.values()) last = Math.max(last, at);
      return Response.json({ restarted: firstAfter.size, lastAt: last });
    }
    const m = PATH.exec(url.pathname);
    if (m) {
      const [, by, id, action] = m as unknown as [string, string, string, string];
      if (action === "restart") {
        restarts++;
        const now = Date.now();
        if (
          mark && by !== mark.dead && id.startsWith(`syd_${mark.dead}_`) && now >= mark.at &&
          !firstAfter.has(id)
        ) firstAfter.set(id, now);
      } else sends++;
    }
    return new Response("{}", { headers: { "Content-Type": "application/json" } });
  });
  console.log(server.addr.port);
  await server.finished;
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Service: one delegation stack with JOBS jobs, measuring itself over [measureAt, endAt).

if (ROLE === "service") {
  const id = arg("id", "solo");
  const endpoint = Number(arg("endpoint", "0"));
  const startAt = num("start-at", Date.now());
  const measureAt = num("measure-at", 0);
  const endAt = num("end-at", 0);
  const env: Record<string, string> = {
    LIVEKIT_URL: "ws://127.0.0.1:7880",
    LIVEKIT_KEY: "benchkey",
    LIVEKIT_SECRET: "benchsecret-benchsecret-benchsecret",
    LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com",
    LIVEKIT_MAX_JOBS: String(JOBS * 3),
    LIVEKIT_MAX_JOBS_PER_USER: String(JOBS * 3),
  };
  const redis = arg("redis", "");
  if (redis !== "") env.LIVEKIT_REDIS_URL = redis;
  if (arg("mode", "single") === "replica") {
    env.LIVEKIT_REPLICAS = "true";
    env.LIVEKIT_REPLICA_ID = id;
    env.LIVEKIT_REPLICA_TTL_MS = arg("ttl-ms", "5000");
  }
  const { config } = loadConfig({
    env: (n) => env[n],
    readTextFile: () => {
      throw new Error("no files");
    },
  });
  const clock = systemClock;
  const log = createLogger({ level: arg("log", "error") as "error" });
  const resolver: Resolver = {
    lookup: (host) => Promise.reject(new Error(host)),
    srv: () => Promise.resolve([]),
  };
  const outbound = createOutbound({
    policy: createOutboundPolicy(config),
    resolver,
    caCerts: [],
    log,
    clock,
    proxies: NO_PROXIES,
  });
  const base = { baseUrl: `http://127.0.0.1:${endpoint}/${id}`, guarded: false };
  const csApi: CsApiResolver = { resolve: () => Promise.resolve(base) };
  const lookup: ParticipantLookup = { getParticipant: () => Promise.resolve("present") };
  const delegation = await startDelegation({ config, outbound, csApi, lookup, clock, log });
  const settled = async () => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await sleep(50);
    }
    return Deno.memoryUsage().rss;
  };
  const idleRss = await settled();
  console.log(JSON.stringify({ ready: id }));
  await sleep(Math.max(0, startAt - Date.now()));
  const batches = Math.max(1, Math.round(PERIOD_MS / 10));
  const perBatch = Math.ceil(JOBS / batches);
  for (let b = 0; b < batches; b++) {
    const work: Promise<void>[] = [];
    for (let i = b * perBatch; i < Math.min(JOBS, (b + 1) * perBatch); i++) {
      work.push(delegation.register({
        serverName: serverName("example.com"),
        delayId: new Secret("delay_id", `syd_${id}_${i}`) as DelayId,
        delayTimeoutMs: T,
        room: "bench-room" as LiveKitRoomAlias,
        identity: `${id}-member-${i}` as LiveKitIdentity,
        userId: userId("@bench:example.com"),
      }));
    }
    await Promise.all(work);
    const due = startAt + ((b + 1) * PERIOD_MS) / batches - Date.now();
    if (due > 0) await sleep(due);
  }
  await sleep(Math.max(0, measureAt - Date.now()));
  const rss0 = await settled();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(Math.max(0, endAt - Date.now()));
  const cpu1 = process.cpuUsage();
  const t1 = performance.now();
  const rss1 = await settled();
  const cpuMs = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / 1000;
  const heap = Deno.memoryUsage();
  const status = delegation.status();
  console.log(JSON.stringify({
    id,
    jobs: status.jobs,
    connected: status.byState.Connected ?? 0,
    cpuPercent: +(cpuMs / (t1 - t0) * 100).toFixed(1),
    addedRssMiB: +((Math.max(rss0, rss1) - idleRss) / 1024 / 1024).toFixed(1),
    heapUsedMiB: +(heap.heapUsed / 1024 / 1024).toFixed(1),
  }));
  // Keep driving the jobs until told to stop (SIGTERM) or killed.
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
  await delegation.shutdown();
  await outbound.close();
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Main: Redis, endpoint, services; rounds; medians.

const REPLICAS = num("replicas", 3);
const ROUNDS = num("rounds", 3);
const WARMUP_S = num("warmup-s", 15);
const MEASURE_S = num("measure-s", 30);
const TTL_MS = num("ttl-ms", 5_000);
const SINGLE = arg("single", "both");
const self = new URL(import.meta.url).pathname;
const flags = ["run", "-A", "--v8-flags=--expose-gc,--max-semi-space-size=4", self];

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), ...args],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

async function startRedis(): Promise<{ port: number; stop(): Promise<void> }> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "lk-jwt-bench-redis-" });
  const child = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  while (!(await redisCli(port, "PING").catch(() => "")).includes("PONG")) await sleep(20);
  return {
    port,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function commandsProcessed(port: number): Promise<number> {
  const m = /total_commands_processed:(\d+)/.exec(await redisCli(port, "INFO", "stats"));
  return Number(m?.[1] ?? 0);
}

/** A child whose stdout lines are JSON objects. */
function spawn(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...flags, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        wake?.();
      }
    }
  })();
  return {
    child,
    async line(match: (l: string) => boolean): Promise<string> {
      for (;;) {
        const hit = lines.find(match);
        if (hit) return hit;
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

interface Row {
  label: string;
  cpu: number[];
  rss: number[];
  heap: number[];
  redisOps: number | undefined;
  takeoverMs?: number;
  /** Jobs of the killed replica restarted by survivors. */
  takenOver?: number;
  /** Jobs whose delayed event expired before the takeover (purged, delegation.md §10.4). */
  expiredBeforeTakeover?: number;
}

async function runRound(mode: "replica" | "single", redisMode: "redis" | "memory"): Promise<Row> {
  const redis = redisMode === "redis" ? await startRedis() : undefined;
  const endpoint = spawn(["--role=endpoint"]);
  const endpointPort = Number(await endpoint.line(() => true));
  const n = mode === "replica" ? REPLICAS : 1;
  const startAt = Date.now() + 2_000 + n * 1_500;
  const measureAt = startAt + WARMUP_S * 1000;
  const endAt = measureAt + MEASURE_S * 1000;
  const services = [];
  for (let i = 1; i <= n; i++) {
    services.push(spawn([
      "--role=service",
      `--id=r${i}`,
      `--mode=${mode}`,
      `--endpoint=${endpointPort}`,
      `--jobs=${JOBS}`,
      `--timeout-ms=${T}`,
      `--ttl-ms=${TTL_MS}`,
      `--start-at=${startAt}`,
      `--measure-at=${measureAt}`,
      `--end-at=${endAt}`,
      ...(redis ? [`--redis=redis://127.0.0.1:${redis.port}`] : []),
      `--log=${arg("log", "error")}`,
    ]));
  }
  for (const s of services) await s.line((l) => l.includes('"ready"'));
  await sleep(Math.max(0, measureAt - Date.now()));
  const ops0 = redis ? await commandsProcessed(redis.port) : 0;
  const w0 = performance.now();
  await sleep(Math.max(0, endAt - Date.now()));
  const ops1 = redis ? await commandsProcessed(redis.port) : 0;
  const w1 = performance.now();
  if (redis && arg("log", "error") !== "error") {
    console.error(await redisCli(redis.port, "INFO", "commandstats"));
  }
  const results = [];
  for (const s of services) {
    results.push(JSON.parse(await s.line((l) => l.includes('"cpuPercent"'))));
  }
  const row: Row = {
    label: mode === "replica"
      ? `${n} replicas × ${JOBS} jobs, Redis`
      : `single instance, ${JOBS} jobs, ${redisMode === "redis" ? "Redis" : "no Redis"}`,
    cpu: results.map((r) => r.cpuPercent),
    rss: results.map((r) => r.addedRssMiB),
    heap: results.map((r) => r.heapUsedMiB),
    redisOps: redis ? Math.round((ops1 - ops0 - 2) / ((w1 - w0) / 1000)) : undefined,
  };
  for (const r of results) {
    if (r.connected !== JOBS) console.error(`  warning: ${r.id} had ${r.connected} connected jobs`);
  }
  if (mode === "replica") {
    // kill -9 of r1; time until each of its jobs was restarted by a survivor.
    const killedAt = Date.now();
    console.error(`  kill -9 of r1 at ${new Date(killedAt).toISOString()}`);
    await fetch(`http://127.0.0.1:${endpointPort}/__mark?dead=r1&at=${killedAt}`).then((r) =>
      r.body?.cancel()
    );
    services[0]!.child.kill("SIGKILL");
    // Complete when r1 owns nothing and every job still alive (not expired before the
    // takeover: with T = 10 s and TTL = 5 s about half are) was restarted by a survivor.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const p = await fetch(`http://127.0.0.1:${endpointPort}/__takeover`).then((r) => r.json());
      const owners = (await redisCli(redis!.port, "--raw", "HGETALL", "lk-jwt:owners")).split("\n");
      let left = 0;
      let alive = 0;
      for (let i = 0; i + 1 < owners.length; i += 2) {
        if (owners[i + 1] === "r1") left++;
        else if (owners[i]!.includes('"r1-member-')) alive++;
      }
      if (left === 0 && p.restarted >= alive && alive > 0) {
        row.takeoverMs = p.lastAt - killedAt;
        row.takenOver = alive;
        row.expiredBeforeTakeover = JOBS - alive;
        break;
      }
      if (Date.now() > deadline) {
        console.error(
          `  takeover incomplete after 60 s: ${p.restarted}/${alive} (r1 still owns ${left})`,
        );
        break;
      }
      await sleep(100);
    }
  }
  for (const [i, s] of services.entries()) {
    if (mode === "replica" && i === 0) continue;
    s.child.kill("SIGTERM");
  }
  for (const s of services) await s.child.status;
  endpoint.child.kill("SIGTERM");
  await endpoint.child.status;
  await redis?.stop();
  return row;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
    ? s[s.length >> 1]!
    : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

console.log(
  `jobs=${JOBS} T=${T}ms replicas=${REPLICAS} rounds=${ROUNDS} warmup=${WARMUP_S}s measure=${MEASURE_S}s ttl=${TTL_MS}ms`,
);
const rows: Row[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  if (SINGLE === "memory" || SINGLE === "both") rows.push(await runRound("single", "memory"));
  if (SINGLE === "redis" || SINGLE === "both") rows.push(await runRound("single", "redis"));
  rows.push(await runRound("replica", "redis"));
  console.log(`round ${round}:`);
  for (const r of rows.slice(-((SINGLE === "both" ? 2 : SINGLE === "none" ? 0 : 1) + 1))) {
    console.log(`  ${JSON.stringify(r)}`);
  }
}
const labels = [...new Set(rows.map((r) => r.label))];
console.log("\nmedians over the rounds (per process):");
const summary = labels.map((label) => {
  const rs = rows.filter((r) => r.label === label);
  const takeovers = rs.map((r) => r.takeoverMs).filter((x): x is number => x !== undefined);
  const ops = rs.map((r) => r.redisOps).filter((x): x is number => x !== undefined);
  return {
    label,
    cpuPercentPerProcess: median(rs.flatMap((r) => r.cpu)),
    addedRssMiBPerProcess: median(rs.flatMap((r) => r.rss)),
    heapUsedMiBPerProcess: median(rs.flatMap((r) => r.heap)),
    redisOpsPerSecond: ops.length ? median(ops) : undefined,
    takeoverMs: takeovers.length ? median(takeovers) : undefined,
    takenOver: takeovers.length ? median(rs.map((r) => r.takenOver ?? 0)) : undefined,
    expiredBeforeTakeover: takeovers.length
      ? median(rs.map((r) => r.expiredBeforeTakeover ?? 0))
      : undefined,
    takeoverMsAll: takeovers.length ? takeovers : undefined,
    cpuAll: rs.map((r) => r.cpu),
  };
});
console.table(summary.map(({ cpuAll: _c, takeoverMsAll: _t, ...rest }) => rest));
console.log(JSON.stringify(summary));
