/**
 * Token-exchange throughput benchmark: starts a fake TLS homeserver and a fake SFU on loopback,
 * the service through the launcher (rate limits off), and drives `POST /get_token` with `wrk`
 * (Debian package `wrk`). Prints requests per second, latency, the service's CPU time per
 * request and its RSS; no assertions.
 *
 *   deno run -A scripts/bench_tokens.ts [--mode replayed|cold] [--seconds 10]
 *     [--connections 32] [--rounds 1] [--no-pin] [--profile=<dir>]
 *
 * `--mode replayed` (default): one OpenID token replayed, verification is served from the
 * userinfo cache and room creation from the 5 s reuse window: the run measures the service's
 * own cost (decode, JWT). `--mode cold`: a distinct token per request (the fake homeserver
 * answers any token), so every request costs one userinfo GET over a kept-alive TLS connection
 * to the homeserver — every first join of every user.
 *
 * On a machine with two or more cores the service runs on core 0 (`taskset`) and this process
 * (the fakes) and `wrk` on core 1, so runs compare; `--no-pin` leaves scheduling alone.
 * `BENCH_V8_FLAGS` (comma-separated) adds V8 flags to the service.
 * `--profile=<dir>` runs `main.ts` directly with the V8 inspector open and records a CPU profile
 * and an allocation-sampling profile of round 1 (scripts/bench_profile.ts).
 *
 * @module
 */
import { startFakeHomeserver } from "../tests/fakes/homeserver.ts";
import { startFakeSfu } from "../tests/fakes/sfu.ts";
import { baseEnv, freePort, spawnService } from "../tests/support/service.ts";
import { startProfiling } from "./bench_profile.ts";

const args = Deno.args;
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const seconds = opt("seconds", 10);
const connections = opt("connections", 32);
const rounds = opt("rounds", 1);
/** `BENCH_V8_FLAGS`: V8 flags for the service, to compare heap settings run by run. */
const v8Extra = Deno.env.get("BENCH_V8_FLAGS") ?? "";
const modeAt = args.indexOf("--mode");
const mode = modeAt >= 0 ? args[modeAt + 1] : "replayed";
if (mode !== "replayed" && mode !== "cold") throw new RangeError("--mode replayed|cold");
const pin = !args.includes("--no-pin") && navigator.hardwareConcurrency >= 2;
const profileDir = args.find((a) => a.startsWith("--profile="))?.slice("--profile=".length);
const inspectPort = profileDir ? freePort() : 0;

async function taskset(args: string[]): Promise<void> {
  const out = await new Deno.Command("taskset", { args, stdout: "null" }).output();
  if (!out.success) throw new Error(`taskset ${args.join(" ")} failed`);
}
// This process (fakes) and its children (wrk) on core 1; the service goes to core 0 below.
if (pin) await taskset(["-a", "-p", "-c", "1", String(Deno.pid)]);

const sfu = startFakeSfu();
let server = "";
const hs = await startFakeHomeserver({
  tls: true,
  ...(mode === "cold" ? { userinfo: () => Response.json({ sub: `@bench:${server}` }) } : {}),
});
server = `localhost:${hs.port}`;
hs.setUser("bench-token", `@bench:${server}`);
const svc = await spawnService({
  env: {
    ...baseEnv(sfu.wsUrl),
    LIVEKIT_LOG_LEVEL: "warn",
    LIVEKIT_JWT_BIND: `127.0.0.1:${freePort()}`,
    LIVEKIT_FULL_ACCESS_HOMESERVERS: server,
    SSL_CERT_FILE: hs.ca!.caCertPath,
    LIVEKIT_RATE_LIMIT_IP_PER_SECOND: "0",
    LIVEKIT_RATE_LIMIT_USER_PER_SECOND: "0",
    LIVEKIT_RATE_LIMIT_SERVER_PER_SECOND: "0",
    // Extra V8 flags for trying heap settings (Deno adds them after the launcher's own).
    ...(v8Extra ? { DENO_V8_FLAGS: v8Extra } : {}),
  },
  // Profiling: main.ts straight under `deno run -A` (the launcher's V8 flags kept) with the
  // inspector open.
  ...(profileDir
    ? {
      direct: [`--inspect=127.0.0.1:${inspectPort}`, "--v8-flags=--max-semi-space-size=4"],
    }
    : {}),
});
const body = JSON.stringify({
  room_id: "!bench:example.com",
  slot_id: "m.call#ROOM",
  openid_token: { access_token: "bench-token", matrix_server_name: server },
  member: { id: "member", claimed_user_id: `@bench:${server}`, claimed_device_id: "DEV" },
});
const dir = await Deno.makeTempDir();
const lua = `${dir}/post.lua`;
const [before, after] = body.split("bench-token");
// Cold: every request carries a token never seen before (thread id + counter).
const coldScript = `local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
local headers = { ["Content-Type"] = "application/json" }
function request()
  n = n + 1
  return wrk.format("POST", nil, headers, ${
  JSON.stringify(before)
} .. "cold-" .. tid .. "-" .. n .. ${JSON.stringify(after)})
end
`;
await Deno.writeTextFile(
  lua,
  mode === "cold"
    ? coldScript
    : `wrk.method = "POST"\nwrk.body = ${
      JSON.stringify(body)
    }\nwrk.headers["Content-Type"] = "application/json"\n`,
);
try {
  const rssMiB = async () =>
    Math.round(
      Number(/VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${svc.pid}/status`))?.[1]) / 1024,
    );
  /** User plus system CPU time of the service so far, in microseconds. */
  const cpuMicros = async () => {
    const stat = await Deno.readTextFile(`/proc/${svc.pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * (1_000_000 / 100);
  };
  if (pin) await taskset(["-a", "-p", "-c", "0", String(svc.pid)]);
  console.log(`mode ${mode}, ${connections} connections, ${pin ? "pinned" : "not pinned"}`);
  console.log(`service RSS idle: ${await rssMiB()} MiB`);
  const warm = await fetch(`${svc.url}/get_token`, { method: "POST", body });
  if (warm.status !== 200) throw new Error(`warm-up answered ${warm.status}: ${await warm.text()}`);
  await warm.body?.cancel();
  for (let round = 1; round <= rounds; round++) {
    const profiling = profileDir && round === 1 ? await startProfiling(inspectPort) : undefined;
    const cpuBefore = await cpuMicros();
    const out = await new Deno.Command("wrk", {
      args: [
        "-t2",
        `-c${connections}`,
        `-d${seconds}s`,
        "--latency",
        "-s",
        lua,
        `${svc.url}/get_token`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("wrk failed (apt-get install wrk)");
    const cpu = await cpuMicros() - cpuBefore;
    if (profiling && profileDir) {
      const { cpu: hot, alloc } = await profiling.stop(profileDir);
      console.log(`self time (round 1, sampled):\n${hot.join("\n")}`);
      console.log(`allocations (round 1, sampled):\n${alloc.join("\n")}`);
    }
    const text = new TextDecoder().decode(out.stdout);
    console.log(text);
    const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
    const p99 = /\s99%\s+([\d.]+\w+)/.exec(text)?.[1] ?? "?";
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
    console.log(
      `round ${round}: ${rps} req/s, p99 ${p99}, CPU ${(cpu / requests).toFixed(0)} µs/request, ` +
        `non-2xx ${non2xx}, RSS ${await rssMiB()} MiB`,
    );
  }
  console.log(
    `userinfo requests: ${hs.count("/_matrix/federation/v1/openid/userinfo")}, CreateRoom calls: ${
      sfu.calls.filter((c) => c.method === "CreateRoom").length
    }`,
  );
} finally {
  await svc.stop();
  await hs.close();
  await sfu.close();
  await Deno.remove(dir, { recursive: true });
}
