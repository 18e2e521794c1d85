/**
 * Membership enforcement benchmark (app-service.md §8): the service through the launcher in
 * app-service mode against the fake Synapse (`is_joined` over HTTP on loopback) and the fake SFU.
 * Prints numbers; no assertions.
 *
 *   deno run -A scripts/bench_membership.ts [--participants 5000] [--per-room 5] [--kicks 1000]
 *     [--interval 20]
 *
 * 1. Issues one token per participant (distinct users, `--per-room` per Matrix room) and reports
 *    each as joined by an SFU webhook: every join is re-checked (one `is_joined` each).
 * 2. Waits for one sweep (one server check per room plus one check per user, at most 8 at once)
 *    and reports how long it took and the calls per second.
 * 3. Kicks `--kicks` users in one pushed transaction and reports the time until the fake SFU has
 *    recorded every `RemoveParticipant`.
 * 4. Resident memory of the service before and after (from the metrics endpoint; the growth is
 *    mostly connection buffers of the run), and, in this process, the heap taken per tracked
 *    entry by 100 000 entries.
 *
 * @module
 */
import { startFakeSfu } from "../tests/fakes/sfu.ts";
import { asClient, startFakeSynapseAs } from "../tests/fakes/synapse_as.ts";
import { baseEnv, freePort, spawnService } from "../tests/support/service.ts";
import { signWebhook } from "../tests/fakes/sfu.ts";
import { memberIdentity, roomAlias } from "../lib/livekit/names.ts";
import { type LiveKitIdentity, userId } from "../lib/ids.ts";
import { TrackedParticipants } from "../lib/membership/tracked.ts";

const args = Deno.args;
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const participants = opt("participants", 5_000);
const perRoom = opt("per-room", 5);
const kicks = Math.min(opt("kicks", 1_000), participants);
const interval = opt("interval", 20);
const SECRET = "devsecret-devsecret-devsecret-devsecret";

const sfu = startFakeSfu();
const hs = startFakeSynapseAs();
const metricsPort = freePort();
const svc = await spawnService({
  env: {
    ...baseEnv(sfu.wsUrl),
    LIVEKIT_LOG_LEVEL: "warn",
    LIVEKIT_JWT_BIND: `127.0.0.1:${freePort()}`,
    LIVEKIT_METRICS_BIND: `127.0.0.1:${metricsPort}`,
    LIVEKIT_AS_TOKEN: hs.asToken,
    LIVEKIT_HS_TOKEN: hs.hsToken,
    LIVEKIT_HS_SERVER_NAME: hs.serverName,
    LIVEKIT_CS_API_URL_OVERRIDES: `${hs.serverName}=${hs.url}`,
    LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "0",
    LIVEKIT_MEMBERSHIP_CHECK_INTERVAL_SECONDS: String(interval),
  },
});

async function rssMiB(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = /^lk_jwt_process_resident_memory_bytes (\S+)$/m.exec(text);
  return Number(m?.[1] ?? NaN) / 1024 / 1024;
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

const isJoinedCalls = () => hs.calls.filter((c) => c.path.endsWith("/is_joined")).length;
async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Heap growth per entry of a full {@linkcode TrackedParticipants}. */
function heapPerEntry(): number {
  const n = 100_000;
  const tracked = new TrackedParticipants(n);
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    const user = userId(`@user-${i}:example.com`);
    tracked.put({
      roomId: `!room-${Math.floor(i / 5)}:example.com`,
      user,
      room: roomAlias(`!room-${Math.floor(i / 5)}:example.com`, "m.call#ROOM"),
      identity: memberIdentity(user, `member-${i}`) as LiveKitIdentity,
      state: "connected",
      expiresAt: Date.now(),
    });
  }
  const grown = Deno.memoryUsage().heapUsed - before;
  return tracked.size === n ? Math.round(grown / n) : NaN;
}

try {
  const rssIdle = await rssMiB();
  const holders = Array.from({ length: participants }, (_, i) => {
    const roomId = `!bench${Math.floor(i / perRoom)}:hs.test`;
    const user = `@u${i}:hs.test`;
    hs.join(roomId, user);
    hs.join(roomId, `server:${hs.serverName}`);
    return {
      roomId,
      user,
      room: roomAlias(roomId, "m.call#ROOM"),
      identity: memberIdentity(userId(user), "m"),
    };
  });
  let started = performance.now();
  await pool(holders, 32, async (h) => {
    const res = await asClient(svc.url, {
      path: "/_matrix/client/v1/rtc/livekit/get_token",
      hsToken: hs.hsToken,
      user: h.user,
      body: { url: sfu.wsUrl, room_id: h.roomId, slot_id: "m.call#ROOM", member_id: "m" },
    });
    if (res.status !== 200) throw new Error(res.text);
  });
  const issueS = (performance.now() - started) / 1000;

  const before = isJoinedCalls();
  started = performance.now();
  await pool(holders, 32, async (h) => {
    sfu.setPresent(h.room, h.identity, true);
    const body = JSON.stringify({
      event: "participant_joined",
      id: crypto.randomUUID(),
      room: { name: h.room },
      participant: { identity: h.identity },
    });
    const res = await fetch(`${svc.url}/sfu_webhook`, {
      method: "POST",
      headers: {
        Authorization: signWebhook(body, {
          key: "devkey",
          secret: SECRET,
          nowSeconds: Math.floor(Date.now() / 1000),
        }),
      },
      body,
    });
    await res.body?.cancel();
  });
  await until(() => isJoinedCalls() >= before + participants, 120_000);
  const joinS = (performance.now() - started) / 1000;
  const rssTracked = await rssMiB();

  // One sweep: rooms + participants questions.
  const rooms = Math.ceil(participants / perRoom);
  const c0 = isJoinedCalls();
  await until(() => isJoinedCalls() > c0, (interval + 5) * 1000);
  const sweepStart = performance.now();
  await until(() => isJoinedCalls() >= c0 + rooms + participants, 300_000);
  const sweepS = (performance.now() - sweepStart) / 1000;

  // Pushed kicks.
  const kicked = holders.slice(0, kicks);
  for (const h of kicked) hs.joined.delete(`${h.roomId}|${h.user}`);
  const removedBefore = sfu.removed.length;
  started = performance.now();
  const res = await asClient(svc.url, {
    path: "/_matrix/app/v1/transactions/bench-1",
    method: "PUT",
    hsToken: hs.hsToken,
    body: {
      events: kicked.map((h) => ({
        type: "m.room.member",
        room_id: h.roomId,
        sender: "@admin:hs.test",
        state_key: h.user,
        content: { membership: "leave" },
      })),
    },
  });
  const answerMs = performance.now() - started;
  if (res.status !== 200) throw new Error(res.text);
  await until(() => sfu.removed.length >= removedBefore + kicks, 120_000);
  const kickS = (performance.now() - started) / 1000;

  console.log(`participants ${participants} in ${rooms} rooms, sweep every ${interval} s`);
  console.log(`tokens issued: ${(participants / issueS).toFixed(0)}/s`);
  console.log(
    `joins re-checked: ${participants} in ${joinS.toFixed(2)} s (${
      (participants / joinS).toFixed(0)
    }/s, webhook to is_joined)`,
  );
  console.log(
    `one sweep: ${rooms + participants} is_joined in ${sweepS.toFixed(2)} s (${
      ((rooms + participants) / sweepS).toFixed(0)
    }/s)`,
  );
  console.log(
    `pushed kicks: transaction of ${kicks} leaves answered in ${answerMs.toFixed(1)} ms; all ` +
      `${kicks} removed after ${kickS.toFixed(2)} s`,
  );
  console.log(
    `service resident memory: ${rssIdle.toFixed(1)} MiB idle, ${rssTracked.toFixed(1)} MiB ` +
      `after issuing and joining ${participants}`,
  );
  console.log(`heap per tracked entry (100 000 entries, in process): ${heapPerEntry()} bytes`);
} finally {
  await svc.stop();
  await hs.close();
  await sfu.close();
}
