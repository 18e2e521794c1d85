/**
 * One-command demo of the real stack (real-stack.md §13), run by `deno task demo` through
 * `e2e/run.sh demo` inside the private network namespace where Redis, Synapse, livekit-server
 * and nginx are already up. It starts our service, registers a demo user, performs a real token
 * exchange with delegation, prints the decoded JWT with the room alias and identity, joins the
 * SFU with the participant helper, shows the delayed leave being kept alive and then sent when
 * the participant exits. Then the homeserver-mediated generation (app-service mode, MSC4195 with
 * MSC4512): a user of the same Synapse and a user of a second, federating Synapse get tokens for
 * the same call through their homeservers, with their access tokens only, and meet in the same
 * LiveKit room. Everything keeps running until Ctrl-C (`--once`: exit instead).
 *
 * @module
 */
import { joinMatrixCall, newCall, runningSince } from "./lib/call.ts";
import {
  LIVEKIT_WS_URL,
  PROXY_URL,
  REDIS_JOBS_KEY,
  SERVER_NAME,
  SERVICE_URL,
  stackPaths,
  SYNAPSE_URL,
} from "./lib/env.ts";
import { decodeJwt } from "./lib/jwt.ts";
import { participantIdentities } from "./lib/livekit.ts";
import { Participant } from "./lib/participant.ts";
import { stopwatch, waitFor } from "./lib/poll.ts";
import { jobEntries } from "./lib/redis.ts";
import { getTokenBody } from "./lib/requests.ts";
import { Service } from "./lib/service.ts";
import { newMemberId, newUser, RTC, startServiceA, startServiceB } from "./lib/appservice.ts";
import { REDIS_URL, SERVER_NAME_B } from "./lib/env.ts";
import { h } from "./lib/hash.ts";

const DELAY_MS = 10_000;

function step(text: string): void {
  console.log(`\n== ${text}`);
}

function show(label: string, value: unknown): void {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  console.log(`${label}: ${text.replaceAll("\n", "\n  ")}`);
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
}

async function demo(once: boolean): Promise<void> {
  const paths = stackPaths();
  step(
    "starting lk-jwt-service (bin/lk-jwt-service) with Redis, registered with Synapse as its application service",
  );
  const service = await startServiceA("demo", { LIVEKIT_REDIS_URL: REDIS_URL });
  let serviceB: Service | undefined;
  let participant: Participant | undefined;
  const others: Participant[] = [];
  try {
    show("service", `${SERVICE_URL} (behind nginx: ${PROXY_URL})`);

    step("registering a demo user on Synapse and creating a call room");
    const call = await newCall("demo");
    show("user", `${call.user.userId} device ${call.user.deviceId}`);
    show("matrix room", call.roomId);
    const delayId = await joinMatrixCall(call, DELAY_MS);
    show("membership", `published; delayed leave scheduled (T = ${DELAY_MS} ms)`);

    step("token exchange: POST /get_token with an OpenID token from Synapse");
    const openId = await call.user.openIdToken();
    show("openid_token", { ...openId, access_token: "<redacted>" });
    const body = getTokenBody(call.user, {
      roomId: call.roomId,
      openId,
      memberId: call.memberId,
      delay: { delayId, delayTimeoutMs: DELAY_MS },
    });
    const res = await service.post("/get_token", body);
    if (res.status !== 200) {
      throw new Error(`/get_token answered ${res.status}: ${JSON.stringify(res.json)}`);
    }
    const jwt = res.json.jwt as string;
    show("answer url", res.json.url as string);
    const decoded = decodeJwt(jwt);
    show("JWT header", decoded.header);
    show("JWT payload", decoded.payload);
    const video = decoded.payload.video as Record<string, unknown>;
    show("LiveKit room alias", `${video.room} (expected H([room_id, slot_id]) = ${call.room})`);
    show("LiveKit identity", `${decoded.payload.sub} (expected ${call.identity})`);
    if (video.room !== call.room || decoded.payload.sub !== call.identity) {
      throw new Error("room alias or identity differ from the values computed by the harness");
    }
    show("Redis", `${REDIS_JOBS_KEY} fields: ${[...(await jobEntries()).keys()].join(", ")}`);

    step("joining the SFU with the participant helper (real WebRTC)");
    participant = await Participant.join(jwt, { name: "demo" });
    show("ListParticipants", await participantIdentities(call.room));

    step(`the service keeps the delayed leave alive (watching for ${(DELAY_MS * 1.5) / 1000} s)`);
    const watch = stopwatch();
    let last = await runningSince(call, delayId);
    while (watch() < DELAY_MS * 1.5) {
      await pause(1000);
      const now = await runningSince(call, delayId);
      if (now === undefined) {
        throw new Error("the delayed leave fired while the participant was joined");
      }
      if (now !== last) {
        console.log(
          `  t=${(watch() / 1000).toFixed(1)}s restarted (running since ${
            new Date(now).toISOString()
          })`,
        );
        last = now;
      }
    }
    show("still joined", !(await call.user.hasLeft(call.roomId)));

    step("participant leaves: the service sends the delegated leave event");
    const elapsed = stopwatch();
    await participant.leave();
    participant = undefined;
    await waitFor(() => call.user.hasLeft(call.roomId), {
      what: "the leave event in the room state",
      timeoutMs: 10_000,
    });
    show("membership state", await call.user.membershipContent(call.roomId));
    show("leave visible after", `${elapsed()} ms`);

    step("new generation: tokens through the homeserver (MSC4195, forwarded by Synapse: MSC4512)");
    serviceB = await startServiceB("demo-b");
    const carol = await newUser("demo-carol", "a");
    const bob = await newUser("demo-bob", "b");
    for (const user of [carol, bob]) {
      await call.user.invite(call.roomId, user.userId);
      await waitFor(() => user.join(call.roomId).then(() => true), {
        what: `${user.userId} to join`,
        timeoutMs: 30_000,
      });
    }
    show(
      "joined the Matrix room",
      `${carol.userId} (same homeserver), ${bob.userId} (${SERVER_NAME_B}, over federation)`,
    );
    const carolMember = newMemberId();
    const request = {
      url: LIVEKIT_WS_URL,
      room_id: call.roomId,
      slot_id: "m.call#ROOM",
      member_id: carolMember,
    };
    show(`POST ${SYNAPSE_URL}${RTC.getToken}`, request);
    const local = await carol.rtc(RTC.getToken, request);
    if (local.status !== 200) throw new Error(`Synapse answered ${local.status}: ${local.text}`);
    show("JWT payload (local user: may publish)", decodeJwt(local.json.jwt as string).payload);
    const bobMember = newMemberId();
    const relayed = await bob.rtc(RTC.getToken, {
      server_name: SERVER_NAME,
      url: LIVEKIT_WS_URL,
      room_id: call.roomId,
      slot_id: "m.call#ROOM",
      member_id: bobMember,
    });
    if (relayed.status !== 200) {
      throw new Error(`Synapse B answered ${relayed.status}: ${relayed.text}`);
    }
    show(
      "JWT payload (user of the other homeserver, relayed over federation: subscribe only)",
      decodeJwt(relayed.json.jwt as string).payload,
    );
    others.push(await Participant.join(local.json.jwt as string, { name: "demo-carol" }));
    others.push(await Participant.join(relayed.json.jwt as string, { name: "demo-bob" }));
    const expected = [h([carol.userId, carolMember]), h([bob.userId, bobMember])].sort();
    show(
      "ListParticipants (the same LiveKit room as the OpenID client above)",
      await participantIdentities(call.room),
    );
    if (JSON.stringify(await participantIdentities(call.room)) !== JSON.stringify(expected)) {
      throw new Error("the homeserver-mediated participants are not in the expected LiveKit room");
    }
    for (const p of others.splice(0)) await p.leave();

    if (once) {
      step("done (--once)");
      return;
    }
    step("stack running; press Ctrl-C to stop");
    show("enter the namespace", `nsenter --net=/proc/${Deno.pid}/ns/net bash`);
    show("endpoints", {
      service: SERVICE_URL,
      proxied: PROXY_URL,
      livekit: LIVEKIT_WS_URL,
      synapse: SYNAPSE_URL,
      server_name: SERVER_NAME,
    });
    const example = {
      ...body,
      openid_token: { ...openId, access_token: "<fresh OpenID access_token>" },
      delay_id: undefined,
      delay_timeout: undefined,
      delay_cs_api_url: undefined,
    };
    show("try", `curl -s -X POST ${SERVICE_URL}/get_token -d '${JSON.stringify(example)}'`);
    show("logs", `${paths.run} (service: logs/service-demo.log)`);
    await untilSignal();
  } finally {
    for (const p of others) await p.dispose();
    await participant?.dispose();
    await serviceB?.stop();
    await service.stop();
  }
}

if (import.meta.main) {
  const once = Deno.args.includes("--once");
  try {
    await demo(once);
  } catch (err) {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exitCode = 1;
  }
}
