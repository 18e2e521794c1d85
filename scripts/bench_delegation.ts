/**
 * Delegation benchmark (docs/performance.md): N concurrent jobs in one process, all connected,
 * restarting their delayed event every 0.8·T against a local delayed-events endpoint that only
 * counts calls, with a stand-in SFU lookup that always answers "present" (so phase-2 sanity
 * checks run at the default 30 s interval). Uses the real job manager, the real outbound HTTP
 * client (by default the unguarded path, as for a `LIVEKIT_CS_API_URL_OVERRIDES` base) and the
 * system clock.
 *
 * Registrations are spread over one restart period so restarts arrive evenly. After a warm-up,
 * the script measures over a fixed window: RSS added per 1,000 jobs (relative to the idle
 * service, after a GC when `--expose-gc` is given), CPU of the whole process in % of one core
 * (by default including the fake endpoint and the load driver), and restart traffic against the ideal
 * N / (0.8·T) per second.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-run --allow-read --ignore-env \
 *   --v8-flags=--expose-gc,--max-semi-space-size=4 scripts/bench_delegation.ts \
 *   [--jobs=10000] [--timeout-ms=10000] [--warmup-s=12] [--measure-s=40] [--endpoint=child] \
 *   [--base=override|guarded|guarded-tls] [--transport=null]
 * ```
 *
 * (`--max-semi-space-size=4` caps V8's young generation as `bin/lk-jwt-service` does for the
 * service; leave it out to see V8's default.)
 *
 * `--endpoint=child` runs the counting endpoint in a second Deno process (so the CPU figure is
 * the service's own); by default everything runs in one process. `--transport=null` replaces
 * the HTTP client with an in-memory answer (job machinery only). `--resolution-ms=N` overrides
 * the job timer coalescing (default 20 ms).
 *
 * `--base=guarded` makes the base URL a discovered one (`http://hs.test:<port>`, SSRF guard,
 * connection pinned to the checked address; the name resolves to 127.0.0.1 without DNS);
 * `--base=guarded-tls` does the same over `https://` with a throwaway CA made by `openssl`
 * (add `--allow-write` for its temporary directory).
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
import type { Resolver } from "../lib/net/dns.ts";
import { createOutbound } from "../lib/net/outbound.ts";
import { NO_PROXIES } from "../lib/net/proxy_env.ts";
import { createOutboundPolicy } from "../lib/net/ssrf.ts";
import { createTestCa } from "../tests/fakes/tls.ts";

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

function choice<T extends string>(name: string, values: readonly T[]): T {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  const value = (hit ? hit.slice(name.length + 3) : values[0]) as T;
  if (!values.includes(value)) throw new RangeError(`--${name} must be one of ${values}`);
  return value;
}
const BASE = choice("base", ["override", "guarded", "guarded-tls"] as const);

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
function serveEndpoint(tls?: { cert: string; key: string }) {
  const counts = { restart: 0, send: 0, other: 0 };
  const options = { hostname: "127.0.0.1", port: 0, onListen: () => {}, ...tls };
  const server = Deno.serve(options, async (req) => {
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

function fileArg(name: string): string | undefined {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return hit ? Deno.readTextFileSync(hit.slice(name.length + 3)) : undefined;
}

if (Deno.args.includes("--serve-only")) {
  const cert = fileArg("cert-file");
  const key = fileArg("key-file");
  const { server } = serveEndpoint(cert && key ? { cert, key } : undefined);
  console.log(server.addr.port);
  await server.finished;
  Deno.exit(0);
}

// In-process endpoint (default), or in a child process so the CPU figure is the service's own.
const inChild = Deno.args.includes("--endpoint=child");
const ca = BASE === "guarded-tls" ? await createTestCa() : undefined;
let port: number;
let child: Deno.ChildProcess | undefined;
let local: ReturnType<typeof serveEndpoint> | undefined;
if (inChild) {
  child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      ...(ca ? [`--allow-read=${ca.dir}`] : []),
      new URL(import.meta.url).pathname,
      "--serve-only",
      ...(ca ? [`--cert-file=${ca.leaf.certPath}`, `--key-file=${ca.leaf.keyPath}`] : []),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  port = Number(String(first.value).trim());
  reader.releaseLock();
} else {
  local = serveEndpoint(ca ? { cert: ca.leaf.certPem, key: ca.leaf.keyPem } : undefined);
  port = local.server.addr.port;
}
async function counts(): Promise<{ restart: number; send: number }> {
  if (nullTransport) return nullCounts;
  if (local) return local.counts;
  const client = ca ? Deno.createHttpClient({ caCerts: [ca.caCertPem] }) : undefined;
  const res = await fetch(`${ca ? "https" : "http"}://127.0.0.1:${port}/__counts`, { client });
  const body = await res.json();
  client?.close();
  return body;
}
const base: CsApiBase = BASE === "override"
  ? { baseUrl: `http://127.0.0.1:${port}`, guarded: false }
  : { baseUrl: `${ca ? "https" : "http"}://hs.test:${port}`, guarded: true };
// Discovered bases: `hs.test` resolves to the endpoint without DNS (the guard still checks it;
// example.com is listed explicitly, so its chain may use loopback addresses).
const resolver: Resolver = {
  lookup: (host) =>
    host === "hs.test" ? Promise.resolve(["127.0.0.1"]) : Promise.reject(new Error(host)),
  srv: () => Promise.resolve([]),
};
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
    resolver,
    caCerts: ca ? [ca.caCertPem] : [],
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
  base: BASE,
  client: nullTransport ? "none" : "builtin",
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
