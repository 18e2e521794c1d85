/**
 * Token-exchange throughput benchmark: starts a fake TLS homeserver and a fake SFU on loopback,
 * the service through the launcher (rate limits off), and drives `POST /get_token` with `wrk`
 * (Debian package `wrk`). Prints requests per second and latency; no assertions.
 *
 *   deno run -A scripts/bench_tokens.ts [--seconds 10] [--connections 50] [--distinct-rooms]
 *
 * With one OpenID token replayed, verification is served from the userinfo cache and room
 * creation from the 5 s reuse window: the run measures the service's own cost (decode, JWT).
 *
 * @module
 */
import { startFakeHomeserver } from "../tests/fakes/homeserver.ts";
import { startFakeSfu } from "../tests/fakes/sfu.ts";
import { baseEnv, freePort, spawnService } from "../tests/support/service.ts";

const args = Deno.args;
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const seconds = opt("seconds", 10);
const connections = opt("connections", 50);
const rounds = opt("rounds", 1);

const sfu = startFakeSfu();
const hs = await startFakeHomeserver({ tls: true });
const server = `localhost:${hs.port}`;
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
  },
});
const body = JSON.stringify({
  room_id: "!bench:example.com",
  slot_id: "m.call#ROOM",
  openid_token: { access_token: "bench-token", matrix_server_name: server },
  member: { id: "member", claimed_user_id: `@bench:${server}`, claimed_device_id: "DEV" },
});
const dir = await Deno.makeTempDir();
const lua = `${dir}/post.lua`;
await Deno.writeTextFile(
  lua,
  `wrk.method = "POST"\nwrk.body = ${
    JSON.stringify(body)
  }\nwrk.headers["Content-Type"] = "application/json"\n`,
);
try {
  const rssMiB = async () =>
    Math.round(
      Number(/VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${svc.pid}/status`))?.[1]) / 1024,
    );
  console.log(`service RSS idle: ${await rssMiB()} MiB`);
  const warm = await fetch(`${svc.url}/get_token`, { method: "POST", body });
  if (warm.status !== 200) throw new Error(`warm-up answered ${warm.status}: ${await warm.text()}`);
  await warm.body?.cancel();
  for (let round = 1; round <= rounds; round++) {
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
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("wrk failed (apt-get install wrk)");
    console.log(`service RSS after round ${round}: ${await rssMiB()} MiB`);
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
