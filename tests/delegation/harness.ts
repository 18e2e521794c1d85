/**
 * An in-process delegation setup for integration tests: `startDelegation` with a manual clock,
 * a real delayed-events fake on 127.0.0.1, a stand-in participant lookup and CS API resolver,
 * and an in-memory hash standing in for Redis (or a real Redis URL).
 *
 * @module
 */
import { startDelegation } from "../../lib/delegation/setup.ts";
import type { Delegation } from "../../lib/delegation/ports.ts";
import type { JobSignal } from "../../lib/delegation/state_machine.ts";
import {
  type DelayId,
  type LiveKitIdentity,
  type LiveKitRoomAlias,
  Secret,
  serverName,
  userId,
} from "../../lib/ids.ts";
import { type HashBackend, MemoryHash } from "../../lib/store/backend.ts";
import { encodeField } from "../../lib/store/codec.ts";
import { type DelayedEventsServer, serveDelayedEvents } from "../fakes/delayed_events.ts";
import { ManualClock } from "../support/manual_clock.ts";
import {
  captureLogger,
  eventBody,
  fetchOutbound,
  type LogLine,
  signWebhook,
  StubCsApi,
  StubLookup,
  testConfig,
  waitFor,
  webhookRequest,
} from "./support.ts";

/** The room name used by most tests. */
export const ROOM = "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs";

/** A running harness. */
export interface Harness {
  clock: ManualClock;
  server: DelayedEventsServer;
  lookup: StubLookup;
  csApi: StubCsApi;
  hash: MemoryHash;
  lines: LogLine[];
  delegation: Delegation;
  /** Registers a job for `identity` in {@linkcode ROOM}. */
  register(
    identity: string,
    options?: { T?: number; delayId?: string; user?: string },
  ): Promise<void>;
  /** Sends a signed webhook event for `identity`; returns the status. */
  webhook(
    event: string,
    identity: string,
    options?: { reason?: string | number; id?: string; room?: string },
  ): Promise<number>;
  /** Restart / send calls for a delay ID. */
  restarts(delayId: string): number;
  sends(delayId: string): number;
  /** Number of log lines with this message. */
  logged(msg: string): number;
  /** Whether the hash holds the job of `identity`. */
  stored(identity: string, room?: string): boolean;
  /** Waits for a condition in real time (HTTP round trips). */
  until(cond: () => boolean, what?: string): Promise<void>;
  close(): Promise<void>;
}

/** Options of {@linkcode startHarness}. */
export interface HarnessOptions {
  env?: Record<string, string>;
  backend?: HashBackend;
  clock?: ManualClock;
  hash?: MemoryHash;
  server?: DelayedEventsServer;
  /** Job timer coalescing (default 0: exact timings). */
  timerResolutionMs?: number;
}

/** Starts the harness. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const clock = options.clock ?? new ManualClock();
  const server = options.server ?? serveDelayedEvents();
  const outbound = fetchOutbound();
  const lookup = new StubLookup();
  const csApi = new StubCsApi(server.url);
  const hash = options.hash ?? new MemoryHash();
  const log = captureLogger();
  const delegation = await startDelegation({
    config: testConfig({ LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS: "0", ...options.env }),
    outbound,
    csApi,
    lookup,
    clock,
    log,
    timerResolutionMs: options.timerResolutionMs ?? 0,
    // With LIVEKIT_REDIS_URL the real Redis connection of the config is used.
    backend: options.env?.LIVEKIT_REDIS_URL ? undefined : options.backend ?? hash,
  });
  return {
    clock,
    server,
    lookup,
    csApi,
    hash,
    lines: log.lines,
    delegation,
    register(identity, o = {}) {
      return delegation.register({
        serverName: serverName("example.com"),
        delayId: new Secret("delay_id", o.delayId ?? `syd_${identity}`) as DelayId,
        delayTimeoutMs: o.T ?? 10_000,
        room: ROOM as LiveKitRoomAlias,
        identity: identity as LiveKitIdentity,
        userId: userId(o.user ?? "@alice:example.com"),
      });
    },
    async webhook(event, identity, o = {}) {
      const body = eventBody(event, {
        room: o.room ?? ROOM,
        identity,
        reason: o.reason,
        id: o.id,
      });
      const token = signWebhook(body, { nowSeconds: Math.floor(clock.now() / 1000) });
      const res = await delegation.handleWebhook(webhookRequest(body, token));
      await res.body?.cancel();
      return res.status;
    },
    restarts: (id) => server.fake.count(id, "restart"),
    sends: (id) => server.fake.count(id, "send"),
    logged: (msg) => log.lines.filter((l) => l.msg === msg).length,
    stored: (identity, room = ROOM) => hash.data.has(encodeField(room, identity)),
    until: (cond, what) => waitFor(cond, { what }),
    async close() {
      await delegation.shutdown();
      await outbound.close();
      if (!options.server) await server.close();
    },
  };
}

/** Signals seen by jobs, from the DEBUG lines (for assertions on the state machine path). */
export function signalsOf(lines: LogLine[], identity: string): JobSignal[] {
  return lines
    .filter((l) => l.msg === "Job signal" && l.fields.identity === identity)
    .map((l) => l.fields.signal as JobSignal);
}
