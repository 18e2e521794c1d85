/**
 * Delegation benchmark (docs/performance.md): N concurrent jobs in one process, all connected,
 * restarting their delayed event every 0.8·T against a local delayed-events endpoint that only
 * counts calls, with a stand-in SFU lookup that always answers "present" (so phase-2 sanity
 * checks run at the default 30 s interval). Uses the real job manager, the real outbound HTTP
 * client (unguarded path, as for a `LIVEKIT_CS_API_URL_OVERRIDES` base) and the system clock.
 *
 * Registrations are spread over one restart period so restarts arrive evenly. After a warm-up,
 * the script measures over a fixed window: RSS added per 1,000 jobs (relative to the idle
 * service, after a GC when `--expose-gc` is given), CPU of the whole process in % of one core
 * (by default including the fake endpoint and the load driver), and restart traffic against the ideal
 * N / (0.8·T) per second.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-run --allow-read --ignore-env \
 *   --v8-flags=--expose-gc scripts/bench_delegation.ts \
 *   [--jobs=10000] [--timeout-ms=10000] [--warmup-s=12] [--measure-s=40] [--endpoint=child]
 * ```
 *
 * (Add `,--max-semi-space-size=1` to `--v8-flags` to cap V8's young generation.)
 *
 * `--endpoint=child` runs the counting endpoint in a second Deno process (so the CPU figure is
 * the service's own); by default everything runs in one process. `--transport=null` replaces
 * the HTTP client with an in-memory answer (job machinery only). `--resolution-ms=N` overrides
 * the job timer coalescing (default 20 ms).
 *
 * @module
 */
import process from "node:process";
import { systemClock } from "../lib/clock.ts";
import { loadConfig } from "../lib/config/config.ts";
import { startDelegation } from "../lib/delegation/setup.ts";
import type {
  CsApiBase,
  CsApiResolver,
  Outbound,
  ParticipantLookup,
} from "../lib/delegation/ports.ts";
import {
  type DelayId,
  type LiveKitIdentity,
  type LiveKitRoomAlias,
  Secret,
  serverName,
  userId,
} from "../lib/ids.ts";
import { createLogger } from "../lib/log.ts";
import { createSystemResolver } from "../lib/net/dns.ts";
import { createOutbound } from "../lib/net/outbound.ts";
import { NO_PROXIES } from "../lib/net/proxy_env.ts";
import { createOutboundPolicy } from "../lib/net/ssrf.ts";

function arg(name: string, fallback: number): number {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  const n = hit ? Number(hit.slice(name.length + 3)) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`--${name} must be a positive number`);
  return n;
}

const JOBS = arg("jobs", 10_000);
const T = arg("timeout-ms", 10_000);
const WARMUP_S = arg("warmup-s", 12);
const MEASURE_S = arg("measure-s", 40);
const PERIOD_MS = Math.max(0.8 * T, 250);
const hitRes = Deno.args.find((a) => a.startsWith("--resolution-ms="));
const RESOLUTION_MS = hitRes ? Number(hitRes.slice("--resolution-ms=".length)) : undefined;

const EMPTY = new Uint8Array(0);
const gc = (globalThis as { gc?: () => void }).gc;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(50);
  }
  return Deno.memoryUsage().rss;
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** The delayed-events endpoint: counts restarts and sends, answers `200 {}`. */
function serveEndpoint(port = 0) {
  const counts = { restart: 0, send: 0, other: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const path = new URL(req.url).pathname;
    if (path === "/__counts") return Response.json(counts);
    if (path.endsWith("/restart")) counts.restart++;
    else if (path.endsWith("/send")) counts.send++;
    else counts.other++;
    return new Response("{}", { headers: { "Content-Type": "application/json" } });
  });
  return { counts, server };
}

if (Deno.args.includes("--serve-only")) {
  const { server } = serveEndpoint();
  console.log(server.addr.port);
  await server.finished;
  Deno.exit(0);
}

// In-process endpoint (default), or in a child process so the CPU figure is the service's own.
const inChild = Deno.args.includes("--endpoint=child");
let port: number;
let child: Deno.ChildProcess | undefined;
let local: ReturnType<typeof serveEndpoint> | undefined;
if (inChild) {
  child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", new URL(import.meta.url).pathname, "--serve-only"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  port = Number(String(first.value).trim());
  reader.releaseLock();
} else {
  local = serveEndpoint();
  port = local.server.addr.port;
}
async function counts(): Promise<{ restart: number; send: number }> {
  if (nullTransport) return nullCounts;
  if (local) return local.counts;
  const res = await fetch(`http://127.0.0.1:${port}/__counts`);
  return await res.json();
}
const base: CsApiBase = { baseUrl: `http://127.0.0.1:${port}`, guarded: false };
const csApi: CsApiResolver = { resolve: () => Promise.resolve(base) };
const lookup: ParticipantLookup = { getParticipant: () => Promise.resolve("present") };

const env: Record<string, string> = {
  LIVEKIT_URL: "ws://127.0.0.1:7880",
  LIVEKIT_KEY: "benchkey",
  LIVEKIT_SECRET: "benchsecret-benchsecret-benchsecret",
  LIVEKIT_FULL_ACCESS_HOMESERVERS: "example.com",
  LIVEKIT_MAX_JOBS: String(JOBS),
  LIVEKIT_MAX_JOBS_PER_USER: String(JOBS),
};
const { config } = loadConfig({
  env: (name) => env[name],
  readTextFile: () => {
    throw new Error("no files");
  },
});
const log = createLogger({ level: "error" });
const clock = systemClock;
// `--transport=null` answers every call with 200 without any I/O (and counts it): the cost of
// the job machinery alone, without the HTTP client.
const nullTransport = Deno.args.includes("--transport=null");
const nullCounts = { restart: 0, send: 0 };
const outbound: Outbound = nullTransport
  ? {
    request(req) {
      if (req.url.endsWith("/restart")) nullCounts.restart++;
      else nullCounts.send++;
      return Promise.resolve({ status: 200, headers: new Headers(), body: EMPTY, url: req.url });
    },
    close: () => Promise.resolve(),
  }
  : createOutbound({
    policy: createOutboundPolicy(config),
    resolver: createSystemResolver({ clock, log }),
    caCerts: [],
    log,
    clock,
    proxies: NO_PROXIES,
  });
const delegation = await startDelegation({
  config,
  outbound,
  csApi,
  lookup,
  clock,
  log,
  timerResolutionMs: RESOLUTION_MS,
});

const idleRss = await settledRss();
console.log(
  `jobs=${JOBS} T=${T}ms period=${PERIOD_MS}ms warmup=${WARMUP_S}s measure=${MEASURE_S}s ` +
    `gc=${gc ? "yes" : "no"}`,
);

// Register all jobs, spread over one restart period.
const started = performance.now();
// One batch every 10 ms: restarts arrive as evenly as real joins would.
const batches = Math.max(1, Math.round(PERIOD_MS / 10));
const perBatch = Math.ceil(JOBS / batches);
for (let b = 0; b < batches; b++) {
  const work: Promise<void>[] = [];
  for (let i = b * perBatch; i < Math.min(JOBS, (b + 1) * perBatch); i++) {
    work.push(delegation.register({
      serverName: serverName("example.com"),
      delayId: new Secret("delay_id", `syd_bench_${i}`) as DelayId,
      delayTimeoutMs: T,
      room: "bench-room" as LiveKitRoomAlias,
      identity: `member-${i}` as LiveKitIdentity,
      userId: userId("@bench:example.com"),
    }));
  }
  await Promise.all(work);
  const due = started + ((b + 1) * PERIOD_MS) / batches - performance.now();
  if (due > 0) await sleep(due);
}
const registerMs = performance.now() - started;
await sleep(Math.max(0, WARMUP_S * 1000 - registerMs));

const status = delegation.status();
const rss0 = await settledRss();
const restarts0 = (await counts()).restart;
const cpu0 = cpuMicros();
const t0 = performance.now();
await sleep(MEASURE_S * 1000);
const cpu1 = cpuMicros();
const t1 = performance.now();
const restarts1 = (await counts()).restart;
const rss1 = await settledRss();

const mem = Deno.memoryUsage();
const seconds = (t1 - t0) / 1000;
const rate = (restarts1 - restarts0) / seconds;
const ideal = JOBS / (PERIOD_MS / 1000);
const cpuPct = ((cpu1 - cpu0) / 1000) / (t1 - t0) * 100;
const addedMiB = (Math.max(rss0, rss1) - idleRss) / 1024 / 1024;
const result = {
  jobs: JOBS,
  timeoutMs: T,
  connected: status.byState.Connected ?? 0,
  registerSeconds: +(registerMs / 1000).toFixed(1),
  idleRssMiB: +(idleRss / 1024 / 1024).toFixed(1),
  addedRssMiB: +addedMiB.toFixed(1),
  rssPer1000JobsMiB: +(addedMiB / (JOBS / 1000)).toFixed(2),
  heapUsedMiB: +(mem.heapUsed / 1024 / 1024).toFixed(1),
  heapTotalMiB: +(mem.heapTotal / 1024 / 1024).toFixed(1),
  cpuPercentOfOneCore: +cpuPct.toFixed(1),
  restartsPerSecond: +rate.toFixed(1),
  idealRestartsPerSecond: +ideal.toFixed(1),
  restartDeviationPercent: +((rate / ideal - 1) * 100).toFixed(2),
  sends: (await counts()).send,
  endpoint: nullTransport ? "none (null transport)" : inChild ? "child process" : "in process",
};
console.table(result);
console.log(JSON.stringify(result));

await delegation.shutdown();
await outbound.close();
await local?.server.shutdown();
if (child) {
  child.kill("SIGTERM");
  await child.status;
}
